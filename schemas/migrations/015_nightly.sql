-- Incremental nightly jobs (miner/nightly_steps.py): a nightly job copies the per-interview rows of
-- the job it extends and computes them only for new interviews; its statistics are recomputed from
-- stored per-interview values. The engagement statistics need these per-interview sums, written by
-- every job's `understand` step (and copied forward by a nightly job for its old interviews).
CREATE TABLE IF NOT EXISTS interview_engagement (
    job_id            uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    interview_id      text NOT NULL REFERENCES interviews ON DELETE CASCADE,
    session_model     text NOT NULL,
    chat_rounds       integer NOT NULL,          -- user messages in the chat with the session model
    user_words        integer NOT NULL,
    user_turns        integer NOT NULL,
    model_words       integer NOT NULL,
    model_turns       integer NOT NULL,
    session_seconds   double precision,          -- NULL when not logged
    interview_seconds double precision,
    answer_words      integer NOT NULL,          -- over the interview's answer units
    answers           integer NOT NULL,
    PRIMARY KEY (job_id, interview_id)
);

-- The theme's size when its label was last written: a nightly job keeps an unchanged theme's label
-- and relabels it once it has grown by a fifth since (miner/nightly_steps.py RELABEL_GROWTH).
-- NULL: labelled at its size in this job (full jobs).
ALTER TABLE themes ADD COLUMN IF NOT EXISTS labelled_answers integer;

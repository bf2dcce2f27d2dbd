-- Jobs as a state machine of idempotent steps, a snapshot of each job's answer units,
-- and theme identity over runs (registry + lineage events).

ALTER TABLE jobs ADD COLUMN embed_chunks integer;          -- how many embed steps fan out
ALTER TABLE jobs ADD COLUMN heartbeat_at timestamptz;      -- last step activity, for stall detection
ALTER TABLE jobs ADD COLUMN previous_job_id uuid;          -- the published job this one builds on

-- The units a job analyses, fixed when it starts so interviews ingested mid-job wait for the next.
CREATE TABLE job_units (
    job_id   uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    position integer NOT NULL,
    unit_id  text NOT NULL REFERENCES units ON DELETE CASCADE,
    PRIMARY KEY (job_id, position),
    UNIQUE (job_id, unit_id)
);

-- One row per step a job has started; a step marked done is skipped when it is delivered again.
CREATE TABLE job_steps (
    job_id      uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    step        text NOT NULL,                   -- prepare, embed:N, cluster, label, aggregate, publish
    status      text NOT NULL CHECK (status IN ('running', 'done')),
    attempts    integer NOT NULL DEFAULT 1,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz,
    detail      jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (job_id, step)
);

-- Every theme id a study has ever had, with the runs where it was born, last seen and retired.
CREATE TABLE theme_registry (
    study       text NOT NULL,
    theme_id    integer NOT NULL,
    born_job    uuid NOT NULL,
    last_job    uuid NOT NULL,
    retired_job uuid,
    PRIMARY KEY (study, theme_id)
);

-- Lineage: what happened to each theme in each published run.
CREATE TABLE theme_events (
    study    text NOT NULL,
    job_id   uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    theme_id integer NOT NULL,
    event    text NOT NULL CHECK (event IN ('born', 'kept', 'merged', 'split', 'retired')),
    related  integer[] NOT NULL DEFAULT '{}',    -- merged: themes absorbed; split: theme it came from
    PRIMARY KEY (job_id, theme_id)
);

-- The published result of a study is its latest succeeded job of any kind (analysis or nightly).
-- Publishing flips a job to succeeded in one transaction, so readers never see half a job.
CREATE OR REPLACE VIEW latest_jobs AS
SELECT DISTINCT ON (study) study, job_id, finished_at
FROM jobs
WHERE status = 'succeeded'
ORDER BY study, finished_at DESC, job_id;

-- job_history: every job with its kind, status, timings and counts.
CREATE VIEW job_history AS
SELECT study, job_id, kind, status, stage, progress, created_at, started_at, finished_at,
       finished_at - started_at AS duration, counts, error
FROM jobs;

-- theme_history: per published run, each theme × model's answers and share, to compare over time.
CREATE VIEW theme_history AS
SELECT j.study, j.job_id, j.kind, j.finished_at, s.theme_id, t.label, s.session_model,
       s.answers, s.interviews, s.share
FROM jobs j
JOIN theme_model_stats s USING (job_id)
JOIN themes t USING (job_id, theme_id)
WHERE j.status = 'succeeded';

-- theme_lineage: births, merges, splits and retirements of theme ids, run by run.
CREATE VIEW theme_lineage AS
SELECT e.study, e.theme_id, e.job_id, j.kind, j.finished_at, e.event, e.related
FROM theme_events e
JOIN jobs j USING (job_id)
WHERE j.status = 'succeeded';

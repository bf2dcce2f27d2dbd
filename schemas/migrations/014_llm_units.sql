-- Opinion units read by an LLM (issue 12, miner/llm_units.py): with an LLM configured, the job's one
-- call per interview (miner/llm_rate.py) also quotes each answer's opinions with a stance; each quote
-- found in its answer becomes an opinion unit (unit_id "<answer unit id>:q<start>-<end>", the span's
-- offsets, the LLM's stance). Answers whose reading fails are split offline, as without an LLM.
--
-- * units.source: which splitter made an opinion unit: 'split' (offline, miner/opinion_job.py) or
--   'llm' (quoted by the LLM; its stance is the LLM's and is not re-estimated). NULL for answer units.
-- * interview_readings: what the units step's LLM call said about each interview (dimensions,
--   ratings, quality), kept for the understand step, so ratings cost no second call.

ALTER TABLE units ADD COLUMN IF NOT EXISTS source text CHECK (source IN ('split', 'llm'));
UPDATE units SET source = 'split' WHERE answer_unit_id IS NOT NULL AND source IS NULL;
COMMENT ON COLUMN units.source IS
    'opinion units: split (offline splitter) or llm (quoted by the LLM, with its stance); NULL for answer units';

CREATE TABLE IF NOT EXISTS interview_readings (
    job_id       uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    interview_id text NOT NULL,
    model        text NOT NULL,   -- the LLM that read it
    reading      jsonb NOT NULL,  -- {"dimensions": {unit_id: dimension}, "ratings": [...], "low_effort", "quality_reason"}
    PRIMARY KEY (job_id, interview_id)
);

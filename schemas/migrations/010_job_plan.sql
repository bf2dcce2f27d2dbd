-- What one step of a job hands the next is a column, not a key of another step's job_steps.detail.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS embed_chunk_size integer;  -- units per embed step (set by `units`)
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS base_units integer;        -- units of the job's last full clustering (nightly growth is measured from it)

UPDATE jobs j SET embed_chunk_size = (s.detail->>'chunk_size')::int
FROM job_steps s WHERE s.job_id = j.job_id AND s.step = 'prepare' AND s.detail ? 'chunk_size';
UPDATE jobs j SET base_units = (s.detail->>'base_units')::int
FROM job_steps s WHERE s.job_id = j.job_id AND s.step = 'cluster' AND s.detail ? 'base_units';

-- Steps are named after their stage modules: `prepare` became `units`.
UPDATE job_steps SET step = 'units' WHERE step = 'prepare';

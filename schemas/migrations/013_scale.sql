-- Fit on a sample, assign the rest (miner/assign.py): the cluster step of a job above
-- MINER_CLUSTER_SAMPLE_THRESHOLD units fits on a seeded sample and keeps each theme's centroid
-- here; the fanned-out `assign` step gives every other unit its nearest theme.
ALTER TABLE jobs ADD COLUMN IF NOT EXISTS sampled_units integer;  -- units the clusterer was fit on; NULL = all

CREATE TABLE IF NOT EXISTS job_centroids (
    job_id   uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    theme_id integer NOT NULL,
    vector   bytea NOT NULL,                 -- float32 little-endian, unit length
    PRIMARY KEY (job_id, theme_id)
);

-- Embeddings are written as float16 from now on (miner/compact.py); rows written before stay float32
-- and are read by their length (2 or 4 bytes × dim).
COMMENT ON COLUMN embeddings.vector IS 'float16 little-endian (2 × dim bytes); rows from before migration 013: float32 (4 × dim)';

-- Core tables: raw interviews, quarantine, jobs, answer units, embedding cache, themes.
-- Every table a job writes is keyed by job_id, and writes are upserts on natural keys,
-- so re-running a stage leaves the same rows.

CREATE TABLE interviews (
    interview_id    text PRIMARY KEY,          -- sha256 of study + canonical record JSON
    study           text NOT NULL,
    external_id     text,                      -- the log's own `id` field, when present
    session_model   text NOT NULL,
    interview_model text NOT NULL,
    record          jsonb NOT NULL,            -- the validated record as ingested
    source_file     text NOT NULL,
    source_position integer NOT NULL,          -- 1-based record position (line for JSONL)
    ingested_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX interviews_study ON interviews (study, session_model);
CREATE INDEX interviews_external_id ON interviews (study, external_id);

CREATE TABLE quarantine (
    quarantine_id   bigserial PRIMARY KEY,
    study           text NOT NULL,
    source_file     text NOT NULL,
    source_position integer NOT NULL,
    error           text NOT NULL,             -- names the record's field at fault
    raw_excerpt     text,                      -- first few kB of the offending record, for humans
    raw_hash        text NOT NULL,
    quarantined_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (study, source_file, source_position, raw_hash)
);

CREATE TABLE jobs (
    job_id      uuid PRIMARY KEY,
    study       text NOT NULL,
    kind        text NOT NULL DEFAULT 'analyze',
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    stage       text,
    progress    real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 1),
    params      jsonb NOT NULL DEFAULT '{}',
    counts      jsonb NOT NULL DEFAULT '{}',
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    finished_at timestamptz
);
CREATE INDEX jobs_study ON jobs (study, finished_at DESC);

CREATE TABLE units (
    unit_id       text PRIMARY KEY,            -- interview_id:answer index
    interview_id  text NOT NULL REFERENCES interviews ON DELETE CASCADE,
    study         text NOT NULL,
    session_model text NOT NULL,
    answer_index  integer NOT NULL,
    question      text NOT NULL,
    answer        text NOT NULL,
    answer_hash   text NOT NULL               -- sha256 of the answer text, the embedding cache key
);
CREATE INDEX units_study ON units (study);

CREATE TABLE embeddings (
    answer_hash text NOT NULL,
    model       text NOT NULL,
    dim         integer NOT NULL,
    vector      bytea NOT NULL,               -- float32 little-endian; no pgvector needed
    PRIMARY KEY (answer_hash, model)
);

CREATE TABLE themes (
    job_id      uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    theme_id    integer NOT NULL,
    label       text NOT NULL,
    keywords    text[] NOT NULL,
    summary     text,
    labeller    text NOT NULL,                -- which labeller produced the label
    answers     integer NOT NULL,
    interviews  integer NOT NULL,
    PRIMARY KEY (job_id, theme_id)
);

CREATE TABLE theme_quotes (
    job_id   uuid NOT NULL,
    theme_id integer NOT NULL,
    rank     integer NOT NULL,                -- 1 = most representative
    unit_id  text NOT NULL REFERENCES units ON DELETE CASCADE,
    PRIMARY KEY (job_id, theme_id, rank),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

CREATE TABLE assignments (
    job_id   uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    unit_id  text NOT NULL REFERENCES units ON DELETE CASCADE,
    theme_id integer,                         -- NULL = outlier, fits no theme
    PRIMARY KEY (job_id, unit_id)
);
CREATE INDEX assignments_theme ON assignments (job_id, theme_id);

CREATE TABLE theme_model_stats (
    job_id        uuid NOT NULL,
    theme_id      integer NOT NULL,
    session_model text NOT NULL,
    answers       integer NOT NULL,           -- this model's answers in the theme
    interviews    integer NOT NULL,           -- distinct interviews behind them
    share         double precision NOT NULL,  -- answers / all of this model's answers in the job
    PRIMARY KEY (job_id, theme_id, session_model),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

-- Worker liveness, so a job whose worker died resumes within seconds, not at Redis's visibility
-- timeout (an hour by default). Each worker beats every few seconds; each task that runs a job's
-- step records which worker runs it. A live worker re-drives the jobs of tasks whose worker
-- stopped beating (miner/heartbeat.py, workers/heartbeat.py).

CREATE TABLE worker_heartbeats (
    worker     text PRIMARY KEY,                    -- Celery's node name, e.g. celery@host
    hostname   text NOT NULL,
    pid        integer NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_beat  timestamptz NOT NULL DEFAULT now()
);

-- One row per step task in flight: written when the task starts, deleted when it ends. A row
-- left behind by a worker that stopped beating is an orphaned step.
CREATE TABLE worker_tasks (
    task_id    text PRIMARY KEY,
    worker     text NOT NULL,
    job_id     uuid NOT NULL REFERENCES jobs ON DELETE CASCADE,
    task       text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX worker_tasks_worker ON worker_tasks (worker);

-- A worker killed between two steps of a job (after one step ended, before it recorded the next
-- one it had already taken from the broker) left no row in worker_tasks, so no live worker knew to
-- re-drive that job: it waited for the stall watchdog (MINER_STALL_SECONDS) or Redis's visibility
-- timeout. A step that ends now keeps its row, marked finished, as the worker's last sign of the
-- job, until the same worker takes another step of that job, shuts down cleanly, or is found dead
-- (then the job, if still queued or running, is re-driven as for a step in flight). Workers also
-- record a step when its message arrives, before it runs (miner/heartbeat.py, workers/heartbeat.py).
ALTER TABLE worker_tasks ADD COLUMN finished_at timestamptz;

-- Which process beats under a worker name: a random token drawn at process start. A pid is not
-- enough: a worker restarted in its container is pid 1 under the same hostname again, and the rows
-- the dead process left must not pass for the new one's.
ALTER TABLE worker_heartbeats ADD COLUMN process text NOT NULL DEFAULT '';
COMMENT ON COLUMN worker_heartbeats.process IS
    'a token drawn when the worker process started; started_at is when this process first beat';
COMMENT ON TABLE worker_tasks IS
    'step tasks a worker has received or is running (finished_at NULL), and each worker''s last finished '
    'step of a job still in progress (finished_at set): rows of a worker that stopped beating, or of an earlier '
    'process under the same worker name, mark jobs to re-drive';
COMMENT ON COLUMN worker_tasks.started_at IS
    'when the worker received or started the task, or last re-claimed it while running';
COMMENT ON COLUMN worker_tasks.finished_at IS 'when the task ended (done, failed, retried or ignored); NULL while in flight';

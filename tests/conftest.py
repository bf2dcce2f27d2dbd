"""Fixtures over real services: a fresh PostgreSQL database per test run, real Redis, a real
Celery worker process. Uses this machine's servers on 127.0.0.1 (override with
MINER_TEST_ADMIN_URL / MINER_TEST_REDIS_URL) and falls back to the embedded ones."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from miner import db
from miner.embedded import EmbeddedServers
from miner.settings import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
RUN_TAG = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"


def _reachable_postgres(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=3).close()
        return True
    except psycopg.OperationalError:
        return False


def _reachable_redis(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=3).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def embedded(tmp_path_factory) -> EmbeddedServers:
    """Embedded servers, started only if a test run needs them."""
    return EmbeddedServers(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="session")
def database_url(request) -> str:
    """A fresh database for this test run, migrated; dropped at the end."""
    admin_url = os.environ.get("MINER_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    if not _reachable_postgres(admin_url):
        admin_url = request.getfixturevalue("embedded").start_postgres()
    name = f"miner_test_{RUN_TAG}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(admin_url, dbname=name)
    with psycopg.connect(url) as conn:
        db.migrate(conn)
    yield url
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def broker_url(request) -> str:
    url = os.environ.get("MINER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    if not _reachable_redis(url):
        url = request.getfixturevalue("embedded").start_redis()
    return url


@pytest.fixture
def conn(database_url):
    """A connection to the test database; whatever the test leaves uncommitted is rolled back."""
    with psycopg.connect(database_url) as connection:
        yield connection
        connection.rollback()


@pytest.fixture(scope="session")
def queue_name() -> str:
    """A queue of this test run's own, so concurrent runs on one Redis never share jobs."""
    return f"miner-test-{RUN_TAG}"


@pytest.fixture(scope="session")
def settings(database_url, broker_url, queue_name, tmp_path_factory) -> Settings:
    return Settings(database_url=database_url, broker_url=broker_url, queue=queue_name,
                    home=tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="session")
def miner_env(settings) -> dict[str, str]:
    """Environment for CLI runs and worker processes pointing at the test services."""
    return {**os.environ, "MINER_DATABASE_URL": settings.database_url, "MINER_BROKER_URL": settings.broker_url,
            "MINER_QUEUE": settings.queue, "MINER_HOME": str(settings.home), "HF_HUB_OFFLINE": "1"}


def start_worker(env: dict[str, str], name: str, log_path: Path) -> subprocess.Popen:
    """A real Celery worker process consuming the test queue."""
    log = open(log_path, "ab")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo",
         "--loglevel", "INFO", "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"],
        env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
    )


def ready_worker(env: dict[str, str], name: str, tmp_path: Path) -> subprocess.Popen:
    """A worker process (log: tmp_path/<name>.log) that has answered a ping."""
    from workers.queue import ping_workers

    log = tmp_path / f"{name}.log"
    process = start_worker(env, name, log)
    deadline = time.monotonic() + 120
    while not any(name in reply for reply in ping_workers(env["MINER_BROKER_URL"], timeout=1.0)):
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
    return process


@pytest.fixture(scope="session")
def worker(miner_env, settings, tmp_path_factory):
    """One worker process for the session; yields the Popen."""
    from workers.queue import ping_workers

    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(miner_env, f"test-{RUN_TAG}", log_path)
    deadline = time.monotonic() + 120
    while not any(RUN_TAG in name for name in ping_workers(settings.broker_url, timeout=1.0)):
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"worker did not start; log:\n{log_path.read_text()[-3000:]}")
    yield process
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture(scope="session")
def embedder():
    """The real default embedding model (all-MiniLM-L6-v2, shipped in a package)."""
    from miner.embed import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder()


def wait_for_job(database_url: str, job_id: str, timeout: float = 600) -> str:
    """Poll the job's row until it ends; returns the final status."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            status = conn.execute("SELECT status FROM jobs WHERE job_id = %s", (job_id,)).fetchone()[0]
            if status in ("succeeded", "failed", "cancelled"):
                return status
            time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not finish in {timeout}s")


def needs_shared_data(name: str) -> Path:
    """Path of a file in ../shared/data, or skip the test with the reason."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (a user's clone has no ../shared); this test reads it in place")
    return path


def analyse_sample_twice(database_url: str, study: str, samples, components) -> list[str]:
    """Store the sample's interviews under `study` and run the whole job on them twice, in process."""
    from miner import repository, repository_jobs
    from miner.ingest import to_interview
    from miner.pipeline import run_job

    with psycopg.connect(database_url) as conn:
        repository.save_interviews(conn, [to_interview(s.record, study, "sample.jsonl", n)
                                          for n, s in enumerate(samples, start=1)])
        job_ids = []
        for _ in range(2):
            job_id = repository_jobs.create_job(conn, study)
            conn.commit()
            run_job(conn, job_id, components)
            job_ids.append(job_id)
    return job_ids


class CountingEmbedder:
    """A real embedder that keeps every text it is asked to embed: what a job embedded, seen from outside."""

    def __init__(self, inner):
        self.inner, self.name, self.texts = inner, inner.name, []

    def embed(self, texts: list[str]):
        self.texts.extend(texts)
        return self.inner.embed(texts)


def check_answers_take_their_units_mean(conn, job_id: str, interview_ids, embedder, embedded: list[str]) -> int:
    """For every answer of these interviews that the job cut into two or more opinion units: its whole
    text is not among `embedded` (what the job's embedder was asked to embed), and the sentiment the job
    stored for it (unit_insights) is the anchor estimator's on the normalised mean of its units' stored
    vectors, rounded to float16 as stored vectors are (not on its whole text's vector: checked to differ
    for at least one). Returns how many answers were checked."""
    import numpy as np

    from miner import repository
    from miner.compact import stored_precision, to_stored
    from miner.ratings import AnchorSentiment

    rows = conn.execute(
        """SELECT a.unit_id, a.answer, x.sentiment, array_agg(u.answer_hash ORDER BY u.unit_id)
           FROM job_units j JOIN units u USING (unit_id) JOIN units a ON a.unit_id = u.answer_unit_id
           JOIN unit_insights x ON x.job_id = j.job_id AND x.unit_id = a.unit_id
           WHERE j.job_id = %s AND a.interview_id = ANY(%s)
           GROUP BY a.unit_id, a.answer, x.sentiment HAVING count(*) >= 2""", (job_id, sorted(interview_ids))).fetchall()
    assert rows, "no answer was cut into two or more opinion units"
    spans = {h for *_, hashes in rows for h in hashes}
    cached = repository.load_embeddings(conn, embedder.name, spans)
    estimator = AnchorSentiment(stored_precision(embedder))
    embedded_texts = set(embedded)
    expected = []
    for unit_id, text, sentiment, hashes in rows:
        assert text not in embedded_texts, unit_id
        mean = np.mean([cached[h].astype(np.float64) for h in hashes], axis=0)
        expected.append(to_stored(mean / np.linalg.norm(mean)))
    expected = estimator.to_scale(estimator.raw(np.vstack(expected)))
    for (unit_id, _, sentiment, _), value in zip(rows, expected):
        assert abs(sentiment - value) < 2e-4, (unit_id, sentiment, value)
    whole = estimator.to_scale(estimator.raw(stored_precision(embedder).embed([text for _, text, *_ in rows])))
    assert (np.abs(whole - expected) > 1e-3).any(), "the whole answers' vectors would give the same sentiments"
    return len(rows)

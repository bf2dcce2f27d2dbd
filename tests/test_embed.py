"""Same input, same themes, whatever the embedding cache's history (issue 13.5).

A text's vector must not depend on which other texts were embedded with it: the cache keeps the
vector of whichever batch embedded a text first, so a dependence shows up as two databases giving
the same study different themes.
"""

from __future__ import annotations

import random
import uuid

import numpy as np
import psycopg
import pytest
from typer.testing import CliRunner

from conftest import ready_worker, wait_for_job
from miner import db
from miner.cli import app
from miner.ingest import to_interview
from miner.sample import generate_sample, write_jsonl
from miner.units import split_units
from test_faults import rerun_in_process, snapshot

pytestmark = pytest.mark.timeout(900)

STUDY = "cache-history"


def answers(interviews: int, seed: int) -> list[str]:
    records = [to_interview(s.record, "s", "f", i) for i, s in enumerate(generate_sample(interviews, seed=seed))]
    return list(dict.fromkeys(u.answer for u in split_units(records)))


def test_a_texts_vector_does_not_depend_on_its_batch(embedder):
    texts = answers(80, seed=5)
    alone = embedder.embed(texts)
    rng = random.Random(1)
    subset = rng.sample(range(len(texts)), len(texts) // 3)
    others = [text + " and then some more words about it" for text in answers(40, seed=6)]
    mixed = [texts[i] for i in subset] + others
    rng.shuffle(mixed)
    row = {text: i for i, text in enumerate(mixed)}
    for batch_size in (64, 7):
        embedder.batch_size = batch_size
        try:
            together = embedder.embed(mixed)
        finally:
            embedder.batch_size = 64
        differing = [i for i in subset if not np.array_equal(alone[i], together[row[texts[i]]])]
        assert differing == [], f"batch {batch_size}: {len(differing)} of {len(subset)} vectors differ"


def fresh_database(admin_url: str):
    return db.temporary_database(admin_url, "miner_history")


def published(url: str) -> dict:
    with psycopg.connect(url) as conn:
        job_id = conn.execute("SELECT job_id FROM latest_jobs WHERE study = %s", (STUDY,)).fetchone()[0]
    return snapshot(url, job_id)


def test_same_study_gives_same_themes_in_databases_with_different_cache_histories(miner_env, database_url, tmp_path):
    admin_url = psycopg.conninfo.make_conninfo(database_url, dbname="postgres")
    study = generate_sample(240, seed=31)
    study_file = tmp_path / "study.jsonl"
    write_jsonl(study, study_file)
    # Database B saw a pilot first: a third of the study's interviews among others, so a third of
    # the study's answers were embedded in other batches, next to other texts, in smaller chunks.
    pilot_file = tmp_path / "pilot.jsonl"
    write_jsonl(study[::3] + generate_sample(120, seed=32), pilot_file)
    runner = CliRunner()
    with fresh_database(admin_url) as url_a, fresh_database(admin_url) as url_b:
        # A: the study alone, analysed by a real worker.
        env_a = {**miner_env, "MINER_DATABASE_URL": url_a, "MINER_QUEUE": f"history-{uuid.uuid4().hex[:8]}"}
        assert runner.invoke(app, ["ingest", str(study_file), "--study", STUDY], env=env_a).exit_code == 0
        worker = ready_worker(env_a, "history-a", tmp_path)
        try:
            queued = runner.invoke(app, ["analyze", "--study", STUDY], env=env_a, catch_exceptions=False)
            assert queued.exit_code == 0, queued.output
            assert wait_for_job(url_a, queued.stdout.strip().splitlines()[-1], timeout=600) == "succeeded"
        finally:
            worker.terminate()
            worker.wait(timeout=60)

        # B: the pilot (chunks of 50 answers), then the same study, in this process.
        env_b = {**miner_env, "MINER_DATABASE_URL": url_b, "MINER_EMBED_CHUNK": "50"}
        assert runner.invoke(app, ["ingest", str(pilot_file), "--study", "pilot"], env=env_b).exit_code == 0
        rerun_in_process(url_b, env_b, "pilot")
        with psycopg.connect(url_b) as conn:
            cached_before = conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        assert runner.invoke(app, ["ingest", str(study_file), "--study", STUDY], env=env_b).exit_code == 0
        rerun_in_process(url_b, {**env_b, "MINER_EMBED_CHUNK": "2000"}, STUDY)
        with psycopg.connect(url_b) as conn:
            assert conn.execute("SELECT count(*) FROM embeddings").fetchone()[0] > cached_before > 0

        a, b = published(url_a), published(url_b)
        assert len(a["themes"]) >= 3
        assert a["assignments"] == b["assignments"]
        assert a["themes"] == b["themes"]
        assert a["quotes"] == b["quotes"]
        assert a["stats"] == b["stats"]

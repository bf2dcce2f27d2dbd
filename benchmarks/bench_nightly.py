"""Nightly vs full re-run (issue 14): wall time of a nightly job on +10% interviews against a full
job over the same study, in process (miner.pipeline.run_job), default components, no LLM.

    python benchmarks/bench_nightly.py --interviews 5000 --new 500 [--cache /tmp/nightly-cache.bin]

In one temporary database (miner.db.temporary_database):
  1. `full_first`: a full job over `--interviews` sample interviews (cold cache, or the old
     interviews' vectors preloaded from `--cache`, written there after the first cold run);
  2. `nightly`: `--new` more interviews (another seed), then the nightly job; it embeds only the new
     answers (cache warm for the old ones, cold for the new);
  3. `full_same_cache`: the new answers' vectors deleted from the cache, a full re-run: the same cache
     state the nightly job met (warm for old units, cold for new) — the like-for-like comparison;
  4. `full_warm`: a second full re-run, every vector cached (no embedding at all).
Per job: wall seconds, each step's seconds (job_steps), the job's counts, and the rows each table
received while the job ran (pg_stat_user_tables inserts + updates + deletes, copies included).

`--embedder hashed` swaps the embedding model for hashed word uni- and bigrams projected to 384
dims (as bench_memory.py's stand-in vectors): every step but the model's encoding runs as it does,
and a 5k study fits the time this shared machine gives. The model's cost for the nightly job's new
texts is then measured apart (`minilm_new_texts_seconds`: all-MiniLM-L6-v2 encoding every distinct
text the nightly job embedded) and added to both sides for the ratios `*_with_minilm`.

Results: benchmarks/results/nightly.json (every run); `nightly_vs_full` (nightly ÷ full_same_cache)
merges into benchmarks/results/scale.json with `--scale`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import psycopg

from miner import repository, repository_jobs
from miner.components import Components
from miner.db import temporary_database
from miner.ingest import to_interview
from miner.pipeline import run_job
from miner.sample import generate_sample
from miner.schedule import create_nightly_jobs
from miner.settings import Settings

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "nightly.json"
SCALE = REPO / "benchmarks" / "results" / "scale.json"
STUDY = "bench"


class HashedEmbedder:
    """Hashed word uni- and bigrams, 384 dims, unit length: a stand-in with no model to run."""

    name = "hashed-ngrams-384"

    def embed(self, texts: list[str]):
        import numpy as np
        from sklearn.feature_extraction.text import HashingVectorizer

        hashed = HashingVectorizer(n_features=384, ngram_range=(1, 2), alternate_sign=True, norm="l2")
        vectors = hashed.transform(list(texts)).toarray().astype(np.float32)
        vectors[np.linalg.norm(vectors, axis=1) == 0, 0] = 1.0
        return vectors


def _ingest(conn: psycopg.Connection, samples, offset: int) -> None:
    repository.save_interviews(conn, [to_interview(s.record, STUDY, "sample.jsonl", offset + n)
                                      for n, s in enumerate(samples, start=1)])
    conn.commit()


def _table_writes(conn: psycopg.Connection) -> dict[str, int]:
    conn.commit()
    time.sleep(1.2)  # cumulative statistics are flushed at most once a second
    conn.execute("SELECT pg_stat_clear_snapshot()")
    rows = conn.execute("SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables").fetchall()
    conn.commit()
    return dict(rows)


def _timed_job(conn: psycopg.Connection, job_id: str, components: Components) -> dict:
    before = _table_writes(conn)
    started = time.perf_counter()
    run_job(conn, job_id, components)
    seconds = time.perf_counter() - started
    after = _table_writes(conn)
    steps = {step: round(float(s), 2) for step, s in conn.execute(
        "SELECT step, extract(epoch FROM finished_at - started_at) FROM job_steps WHERE job_id = %s "
        "ORDER BY started_at", (job_id,)).fetchall()}
    job = repository_jobs.get_job(conn, job_id)
    conn.commit()
    written = {t: after[t] - before.get(t, 0) for t in sorted(after) if after[t] - before.get(t, 0)}
    row = {"job_id": job_id, "kind": job.kind, "seconds": round(seconds, 1), "steps": steps,
           "counts": job.counts, "rows_written": written}
    print(json.dumps({k: row[k] for k in ("kind", "seconds", "steps")}), flush=True)
    return row


def _dump_cache(conn: psycopg.Connection, path: Path) -> None:
    with path.open("wb") as out, conn.cursor().copy("COPY embeddings TO STDOUT (FORMAT binary)") as copy:
        for block in copy:
            out.write(block)
    conn.commit()


def _load_cache(conn: psycopg.Connection, path: Path) -> None:
    with conn.cursor().copy("COPY embeddings FROM STDIN (FORMAT binary)") as copy, path.open("rb") as source:
        while block := source.read(1 << 20):
            copy.write(block)
    conn.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=5000)
    parser.add_argument("--new", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None,
                        help="vectors of the old interviews' answers: loaded when the file exists, else written")
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--embedder", choices=("model", "hashed"), default="model")
    parser.add_argument("--scale", action="store_true", help="write nightly_vs_full into scale.json")
    parser.add_argument("--skip-warm", action="store_true", help="leave out the fully warm full re-run")
    parser.add_argument("--admin-url", default=os.environ.get("MINER_ADMIN_URL",
                                                              "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    if args.embedder == "hashed":
        components = Components.from_settings(Settings(), embedder=HashedEmbedder())
    else:
        components = Components.from_settings(Settings())
    components.embedder.embed(["warm up"])  # the model load is not the job's
    old = generate_sample(args.interviews, seed=args.seed)
    new = generate_sample(args.new, seed=args.seed + 1)
    run = {"label": args.label, "embedder": components.embedder.name, "interviews": args.interviews, "new": args.new, "seed": args.seed,
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "jobs": {}}
    with temporary_database(args.admin_url, prefix="miner_bench_nightly") as url, psycopg.connect(url) as conn:
        _ingest(conn, old, 0)
        preloaded = args.cache is not None and args.cache.exists()
        if preloaded:
            _load_cache(conn, args.cache)
        run["first_cache"] = "preloaded" if preloaded else "cold"
        first = repository_jobs.create_job(conn, STUDY)
        conn.commit()
        run["jobs"]["full_first"] = _timed_job(conn, first, components)
        if args.cache is not None and not preloaded:
            _dump_cache(conn, args.cache)
        old_hashes = {h for (h,) in conn.execute("SELECT answer_hash FROM embeddings")}
        conn.commit()

        _ingest(conn, new, args.interviews)
        created = dict(create_nightly_jobs(conn))
        run["jobs"]["nightly"] = _timed_job(conn, created[STUDY], components)
        nightly_hashes = {h for (h,) in conn.execute("SELECT answer_hash FROM embeddings")} - old_hashes
        conn.commit()
        if args.embedder == "hashed":  # what the model would have spent on the nightly job's new texts
            from miner.embed import SentenceTransformerEmbedder
            from miner.units import answer_hash

            texts = {answer_hash(t): t for (t,) in conn.execute(
                "SELECT answer FROM units WHERE answer_hash = ANY(%s)", (sorted(nightly_hashes),))}
            conn.commit()
            model = SentenceTransformerEmbedder(Settings().embedding_model)
            model.embed(["warm up"])
            started = time.perf_counter()
            model.embed(sorted(texts.values()))
            run["minilm_new_texts"] = len(texts)
            run["minilm_new_texts_seconds"] = round(time.perf_counter() - started, 1)

        conn.execute("DELETE FROM embeddings WHERE answer_hash = ANY(%s)", (sorted(nightly_hashes),))
        run["deleted_new_vectors"] = len(nightly_hashes)
        full = repository_jobs.create_job(conn, STUDY)
        conn.commit()
        run["jobs"]["full_same_cache"] = _timed_job(conn, full, components)
        if not args.skip_warm:
            warm = repository_jobs.create_job(conn, STUDY)
            conn.commit()
            run["jobs"]["full_warm"] = _timed_job(conn, warm, components)

        nightly_job, full_job = run["jobs"]["nightly"]["job_id"], run["jobs"]["full_same_cache"]["job_id"]
        themes = lambda job: {r[0] for r in conn.execute("SELECT theme_id FROM themes WHERE job_id = %s", (job,))}
        run["themes"] = {"first": len(themes(first)), "nightly": len(themes(nightly_job)),
                         "nightly_kept_from_first": len(themes(first) & themes(nightly_job))}
        kept = conn.execute(
            """SELECT count(*) FILTER (WHERE a.theme_id IS NOT DISTINCT FROM b.theme_id), count(*)
               FROM assignments a JOIN assignments b USING (unit_id)
               WHERE a.job_id = %s AND b.job_id = %s AND a.theme_id IS NOT NULL""", (first, nightly_job)).fetchone()
        run["old_units_same_theme"] = round(kept[0] / max(kept[1], 1), 4)
        conn.commit()
    jobs = run["jobs"]
    run["ratio_nightly_vs_full_same_cache"] = round(jobs["nightly"]["seconds"] / jobs["full_same_cache"]["seconds"], 4)
    if "full_warm" in jobs:
        run["ratio_nightly_vs_full_warm"] = round(jobs["nightly"]["seconds"] / jobs["full_warm"]["seconds"], 4)
    if "minilm_new_texts_seconds" in run:
        extra = run["minilm_new_texts_seconds"]
        run["ratio_nightly_vs_full_same_cache_with_minilm"] = round(
            (jobs["nightly"]["seconds"] + extra) / (jobs["full_same_cache"]["seconds"] + extra), 4)
        if "full_warm" in jobs:
            run["ratio_nightly_vs_full_warm_with_minilm"] = round(
                (jobs["nightly"]["seconds"] + extra) / jobs["full_warm"]["seconds"], 4)
    if run["first_cache"] == "cold":
        run["ratio_nightly_vs_full_first_cold"] = round(jobs["nightly"]["seconds"] / jobs["full_first"]["seconds"], 4)
    print(json.dumps({k: v for k, v in run.items() if k != "jobs"}), flush=True)
    runs = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs + [run], indent=1) + "\n")
    if args.scale and SCALE.exists():
        scale = json.loads(SCALE.read_text())
        scale["nightly_vs_full"] = run["ratio_nightly_vs_full_same_cache"]
        SCALE.write_text(json.dumps(scale, indent=2) + "\n")


if __name__ == "__main__":
    main()

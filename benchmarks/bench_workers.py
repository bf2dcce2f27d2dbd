"""Jobs through real Celery workers: embedding throughput with 1 and 2 worker processes vs raw
sentence-transformers, then a nightly incremental run vs a full re-run.

Run: ``python benchmarks/bench_workers.py [--interviews N] [--new-interviews M]`` (defaults 500 and
N/10; the issue asks for 10,000 and 1,000, which takes well over an hour on 2 shared cores).

Same run, back to back, on a fresh database and a Celery queue of the benchmark's own:

1. raw ``SentenceTransformer.encode`` of the study's distinct answers in this process;
2. for each worker configuration (1 worker, 2 workers, and optionally 2 workers with one torch
   thread each): start ``celery worker --pool solo`` processes, run a small warm-up job (loads the
   model in each), empty the embedding cache, then ``miner analyze`` the study through them; the
   embed phase is the first embed step's start to the last embed step's finish (``job_steps``);
3. with the last configuration's workers: ingest M new interviews, run the nightly job
   (``schedule.create_nightly_jobs``, as the beat entry does), then a full re-run of the same study.

Writes benchmarks/results/workers.json and the ``## Embedding and jobs`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedding import (  # noqa: E402
    BROKER_URL,
    REPO,
    distinct_answers,
    fresh_database,
    load_raw_model,
    machine,
    raw_encode,
    sample_interviews,
    store_interviews,
    write_results,
)

import psycopg  # noqa: E402

from miner import repository_jobs, schedule  # noqa: E402
from miner.units import split_units  # noqa: E402
from workers.queue import enqueue_analysis, ping_workers  # noqa: E402

STUDY = "bench-workers"
CONFIGS = {
    "1": ("1 worker (solo pool)", 1, None),
    "2": ("2 workers (solo pool each)", 2, None),
    "2x1t": ("2 workers, 1 torch thread each", 2, 1),
}


def start_workers(env: dict[str, str], count: int, threads: int | None, log_dir: Path, tag: str) -> list[subprocess.Popen]:
    """`count` worker processes on the benchmark's queue, each answering a ping before we go on."""
    processes, names = [], []
    for i in range(count):
        name = f"bench-{tag}-{i}"
        worker_env = dict(env)
        if threads is not None:  # torch reads these at import: the worker's intra-op thread count
            worker_env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        log = open(log_dir / f"{name}.log", "ab")
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo", "--loglevel", "INFO",
             "--hostname", f"{name}@%h", "--without-gossip", "--without-mingle"],
            env=worker_env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT))
        names.append(name)
    deadline = time.monotonic() + 300
    while True:
        answered = ping_workers(env["MINER_BROKER_URL"], timeout=1.0)
        if all(any(n in a for a in answered) for n in names):
            return processes
        if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
            stop_workers(processes)
            raise RuntimeError(f"workers did not start; see {log_dir}")


def stop_workers(processes: list[subprocess.Popen]) -> None:
    for p in processes:
        if p.poll() is None:
            p.terminate()
    for p in processes:
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_job_through_workers(url: str, env: dict[str, str], study: str, kind: str = "analyze",
                            timeout: float = 7200) -> str:
    """Queue a job (or the nightly jobs) for the study and wait for it; returns its id."""
    with psycopg.connect(url) as conn:
        if kind == "nightly":
            created = dict(schedule.create_nightly_jobs(conn))
            job_id = created[study]
        else:
            job_id = repository_jobs.create_job(conn, study)
            conn.commit()
    enqueue_analysis(env["MINER_BROKER_URL"], env["MINER_QUEUE"], job_id)
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            status = conn.execute("SELECT status, error FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
            if status[0] == "succeeded":
                return job_id
            if status[0] in ("failed", "cancelled"):
                raise RuntimeError(f"job {job_id} {status[0]}: {status[1]}")
            time.sleep(0.2)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def job_timing(url: str, job_id: str) -> dict:
    """Wall times from the job's rows: embed phase, cluster step, whole job."""
    with psycopg.connect(url, autocommit=True) as conn:
        steps = conn.execute("SELECT step, started_at, finished_at, detail FROM job_steps WHERE job_id = %s",
                             (job_id,)).fetchall()
        created, finished = conn.execute("SELECT created_at, finished_at FROM jobs WHERE job_id = %s",
                                         (job_id,)).fetchone()
    embeds = [s for s in steps if s[0].startswith("embed:")]
    by_name = {s[0]: s for s in steps}
    cluster = by_name["cluster"]
    embedded = sum(s[3].get("embedded", 0) for s in embeds)
    embed_seconds = (max(s[2] for s in embeds) - min(s[1] for s in embeds)).total_seconds() if embeds else 0.0
    return {"job_id": job_id, "embed_steps": len(embeds), "embedded": embedded,
            "late_embedded": cluster[3].get("late_embedded", 0), "embed_seconds": round(embed_seconds, 3),
            "answers_per_s": round(embedded / embed_seconds, 2) if embedded else None,
            "cluster_seconds": round((cluster[2] - cluster[1]).total_seconds(), 3),
            "cluster_detail": cluster[3],
            "job_seconds": round((finished - created).total_seconds(), 3),
            "steps": {s[0]: round((s[2] - s[1]).total_seconds(), 3) for s in sorted(steps, key=lambda s: s[1])}}


def run(interviews: int, new_interviews: int, configs: list[str], embed_chunk: int, seed: int) -> dict:
    report = {"benchmark": "workers", "machine": machine()}
    study_interviews = sample_interviews(interviews, seed, STUDY)
    texts = distinct_answers(study_interviews)
    units = len(split_units(study_interviews))
    print(f"{interviews} interviews, {units} units, {len(texts)} distinct answers", flush=True)
    tag = uuid.uuid4().hex[:8]
    log_dir = Path(tempfile.mkdtemp(prefix="bench-workers-"))

    with fresh_database() as url:
        env = {**os.environ, "MINER_DATABASE_URL": url, "MINER_BROKER_URL": BROKER_URL,
               "MINER_QUEUE": f"miner-bench-{tag}", "MINER_HOME": str(log_dir / "home"), "HF_HUB_OFFLINE": "1",
               "MINER_EMBED_CHUNK": str(embed_chunk)}
        store_interviews(url, study_interviews)

        model = load_raw_model()
        model.encode(texts[:128], show_progress_bar=False)
        raw = raw_encode(model, texts)
        del model
        print("raw", raw, flush=True)

        runs, workers = [], []
        try:
            for n, key in enumerate(configs):
                label, count, threads = CONFIGS[key]
                workers = start_workers(env, count, threads, log_dir, f"{tag}-{key}")
                warm_study = f"warm-up-{key}"
                # The smallest job with a chunk for every worker, so each loads its model outside the measure,
                # and enough units for UMAP to run (its numba code compiles on first use, ~25 s here).
                warm_up_count = max(10, math.ceil(((count - 1) * embed_chunk + 6) / 5.5))
                store_interviews(url, sample_interviews(warm_up_count, 1000 + n, warm_study))
                run_job_through_workers(url, env, warm_study)
                with psycopg.connect(url) as conn:  # a cold cache for the measured job
                    conn.execute("DELETE FROM embeddings")
                    conn.commit()
                timing = job_timing(url, run_job_through_workers(url, env, STUDY))
                # Per distinct answer: two chunks holding the same new answer may both embed it.
                timing["answers_per_s"] = round(len(texts) / timing["embed_seconds"], 2)
                timing.update(config=key, label=label, workers=count, torch_threads=threads, run_order=n + 1,
                              vs_raw=round(timing["answers_per_s"] / raw["answers_per_s"], 3))
                print(label, timing, flush=True)
                runs.append(timing)
                if n < len(configs) - 1:
                    stop_workers(workers)
                    workers = []

            nightly = None
            if new_interviews:
                new = sample_interviews(new_interviews, seed + 1, STUDY)
                store_interviews(url, new)
                incremental = job_timing(url, run_job_through_workers(url, env, STUDY, kind="nightly"))
                print("nightly", incremental, flush=True)
                full = job_timing(url, run_job_through_workers(url, env, STUDY))
                print("full re-run", full, flush=True)
                nightly = {"new_interviews": new_interviews, "new_units": len(split_units(new)),
                           "total_interviews": interviews + new_interviews, "workers": runs[-1]["label"],
                           "nightly_mode": incremental["cluster_detail"].get("mode"),
                           "nightly": incremental, "full": full,
                           "cluster_ratio": round(full["cluster_seconds"] / max(incremental["cluster_seconds"], 1e-9), 2),
                           "job_ratio": round(full["job_seconds"] / max(incremental["job_seconds"], 1e-9), 2)}
        finally:
            stop_workers(workers)

    report.update(params={"interviews": interviews, "units": units, "answers": len(texts), "seed": seed,
                          "embed_chunk": embed_chunk, "new_interviews": new_interviews,
                          "configs": configs},
                  raw=raw, runs=runs, nightly=nightly)
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interviews", type=int, default=500, help="study size (the issue's size: 10000)")
    ap.add_argument("--new-interviews", type=int, default=None, help="nightly's new interviews (default N/10; 0 = skip)")
    ap.add_argument("--configs", default="2,1", help=f"comma-separated run order, of {sorted(CONFIGS)}; the "
                    "nightly comparison runs on the last one's workers (1 worker: the one that has run UMAP already)")
    ap.add_argument("--embed-chunk", type=int, default=500, help="MINER_EMBED_CHUNK of the workers")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--explanation", default="", help="a paragraph stored with the figures, shown under the table")
    ap.add_argument("--no-write", action="store_true", help="print the figures only (a smoke run)")
    args = ap.parse_args(argv)
    new = args.interviews // 10 if args.new_interviews is None else args.new_interviews
    configs = [c for c in args.configs.split(",") if c]
    report = run(args.interviews, new, configs, args.embed_chunk, args.seed)
    if args.explanation:
        report["explanation"] = args.explanation
    if not args.no_write:
        write_results("workers", report)
    print(json.dumps({r["label"]: r["vs_raw"] for r in report["runs"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

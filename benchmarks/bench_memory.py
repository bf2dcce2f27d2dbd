"""Peak memory (RSS) of an in-process analysis job at 100k answer units.

Run: ``python benchmarks/bench_memory.py [--interviews N] [--real-answers K]`` (defaults 3,000
interviews and 1,000; the issue's size is ``--interviews 17000``, about 100,000 answer units).

The study comes from the sample generator. ``miner.pipeline.run_job`` runs in a child process
with the default components (MiniLM embedder, UMAP+HDBSCAN+Ward clusterer, extractive labels,
no LLM); its peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss``, and a thread in the child
samples its RSS so that the peak can be pinned to a step (``job_steps`` timestamps).

Embedding 80,000 distinct answers with the real model takes far longer than this benchmark's
budget on 2 shared cores, so by default all but K distinct answers get stand-in vectors in the
embedding cache before the job starts (hashed word n-grams, 384 dims, unit length: the same
shape and dtype as MiniLM's); the job embeds the K others with the real model, so torch, the
weights and the activations count in the measured process. ``--real-answers -1`` embeds them all.

Writes benchmarks/results/memory.json and the ``## Embedding and jobs`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embedding import (  # noqa: E402
    REPO,
    fresh_database,
    machine,
    sample_interviews,
    store_interviews,
    write_results,
)

import numpy as np  # noqa: E402
import psycopg  # noqa: E402

from miner import repository, repository_jobs  # noqa: E402
from miner.units import split_units  # noqa: E402

STUDY = "bench-memory"
SAMPLE_INTERVAL = 0.1
MODEL_NAME = "all-MiniLM-L6-v2@fp64r5"  # SentenceTransformerEmbedder().name: the cache key of its vectors


def stand_in_vectors(texts: list[str]) -> np.ndarray:
    """Unit vectors of hashed word uni- and bigrams in 384 dims (a random ±1 projection of bag-of-words)."""
    from sklearn.feature_extraction.text import HashingVectorizer

    hashed = HashingVectorizer(n_features=384, ngram_range=(1, 2), alternate_sign=True, norm="l2")
    vectors = hashed.transform(texts).toarray().astype(np.float32)
    empty = np.linalg.norm(vectors, axis=1) == 0
    vectors[empty, 0] = 1.0
    return vectors


def prefill_cache(url: str, texts: list[str], batch: int = 5000) -> None:
    """Cache rows for these answers under the real model's name, as if a job had embedded them."""
    from miner.units import answer_hash

    with psycopg.connect(url) as conn:
        for start in range(0, len(texts), batch):
            part = texts[start:start + batch]
            repository.save_embeddings(conn, MODEL_NAME, dict(zip(map(answer_hash, part), stand_in_vectors(part))))
        conn.commit()


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(url: str, study: str) -> dict:
    """Runs in the measured process: one job, start to end, as `pipeline.run_job` runs it."""
    from miner.components import Components
    from miner.embed import SentenceTransformerEmbedder
    from miner.pipeline import run_job
    from miner.settings import Settings

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    components = Components.from_settings(Settings(), embedder=embedder)
    baseline = rss_bytes()
    samples: list[tuple[float, int]] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append((time.time(), rss_bytes()))
            time.sleep(SAMPLE_INTERVAL)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with psycopg.connect(url) as conn:
        job_id = repository_jobs.create_job(conn, study)
        conn.commit()
        start = time.perf_counter()
        counts = run_job(conn, job_id, components)
        job_seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        rows = conn.execute(
            """SELECT step, extract(epoch FROM started_at), extract(epoch FROM finished_at), detail
               FROM job_steps WHERE job_id = %s ORDER BY started_at""", (job_id,)).fetchall()
    steps: dict[str, dict] = {}
    for step, began, ended, detail in rows:
        name = "embed" if step.startswith("embed:") else step
        began, ended = float(began), float(ended)
        before = [rss for t, rss in samples if t <= began] or [baseline]
        # A step shorter than the sampling interval gets the sample taken just before it ended.
        during = [rss for t, rss in samples if began <= t <= ended] or [
            next((rss for t, rss in reversed(samples) if t <= ended), before[-1])]
        entry = steps.setdefault(name, {"step": name, "seconds": 0.0, "rss_at_start_mib": round(before[-1] / 1024 ** 2, 1),
                                        "peak_rss_mib": 0.0, "parts": 0})
        entry["seconds"] = round(entry["seconds"] + ended - began, 2)
        entry["peak_rss_mib"] = round(max(entry["peak_rss_mib"], max(during) / 1024 ** 2), 1)
        entry["parts"] += 1
    steps["embed"]["step"] = f"embed ({steps['embed']['parts']} chunks)"
    return {"peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "sampled_peak_rss_bytes": max(rss for _, rss in samples), "baseline_rss_mib": round(baseline / 1024 ** 2, 1),
            "job_seconds": round(job_seconds, 1), "counts": counts, "steps": list(steps.values())}


def run(interviews: int, real_answers: int, seed: int) -> dict:
    report = {"benchmark": "memory", "machine": machine()}
    data = sample_interviews(interviews, seed, STUDY)
    units = split_units(data)
    texts = list(dict.fromkeys(u.answer for u in units))
    real = len(texts) if real_answers < 0 else min(real_answers, len(texts))
    print(f"{interviews} interviews, {len(units)} units, {len(texts)} distinct answers, {real} to embed for real",
          flush=True)
    with fresh_database() as url:
        store_interviews(url, data)
        prefill_cache(url, texts[real:])
        del data, units
        out = subprocess.run([sys.executable, __file__, "--child", url, STUDY], cwd=REPO, check=True,
                             stdout=subprocess.PIPE, text=True).stdout
    result = json.loads(out.strip().splitlines()[-1])
    report.update(params={"interviews": interviews, "units": result["counts"]["units"], "answers": len(texts),
                          "real_answers": real, "stand_in_vectors": len(texts) - real, "seed": seed,
                          "sample_interval_s": SAMPLE_INTERVAL}, **result)
    report["targets"] = {"peak_rss_under_2gb": result["peak_rss_bytes"] < 2 * 1024 ** 3}
    return report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interviews", type=int, default=3000, help="study size (the issue's 100k units: 17000)")
    ap.add_argument("--real-answers", type=int, default=1000,
                    help="distinct answers the job embeds with the real model (-1 = all; the rest get stand-ins)")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--notes", default="", help="a paragraph stored with the figures (what holds the memory, ...)")
    ap.add_argument("--no-write", action="store_true", help="print the figures only (a smoke run)")
    ap.add_argument("--child", nargs=2, metavar=("DATABASE_URL", "STUDY"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    report = run(args.interviews, args.real_answers, args.seed)
    if args.notes:
        report["notes"] = args.notes
    print(json.dumps({k: report[k] for k in ("peak_rss_bytes", "job_seconds", "steps")}, indent=1))
    if not args.no_write:
        write_results("memory", report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Scale benchmark: fit on a sample and assign the rest (miner.assign), float16 embeddings, memory.

Run: ``python benchmarks/bench_scale.py quality`` (~10 min on 2 cores),
``python benchmarks/bench_scale.py memory --units 100000`` / ``--units 1000000`` (synthetic vectors),
``python benchmarks/bench_scale.py workers [--interviews 200] [--configs 2,1]`` (~20 min) and
``python benchmarks/bench_scale.py job --units 100000`` / ``--units 1000000`` (a whole job) and
``python benchmarks/bench_scale.py understand --units 100000 --checkouts A B`` (the understand step alone).

quality: banking77 and clinc150 (../shared/data) embedded once with all-MiniLM-L6-v2; the default
clusterer fitted on all texts vs fitted on a seeded half and the other half assigned (nearest
centroid, or a 15-nearest-sampled-neighbours vote), the full fit on float16-rounded vectors, the full
fit's own labels on the sample with the rest assigned (what the assignment alone costs), and the
product followed by 3 streamed k-means passes (measured, not in the product); ``--variants`` picks
some. Drops in NMI/ARI points (full minus sampled, mean over seeds 42, 1, 2, spread = min..max);
``--seeds 3 4`` gives validation rows that leave scale.json's drops alone; ``--cache DIR`` (outside the
repository) keeps the embeddings between runs.

memory: the cluster + assign path of a job at N units on synthetic vectors (a mixture of 200
Gaussian directions in 384 dims, Zipf-ish sizes, unit length, float16 as stored): sample fit, then
the assignment in chunks as the `assign` step does, in a child process whose peak RSS is ru_maxrss;
the child first loads torch and MiniLM (a worker that embedded holds them). The vectors are read
from a file standing in for the embeddings table, so Postgres's own cost is not in the figure.

workers: a study of synthetic interviews (miner.sample) analysed by a real job through 2 and then 1
Celery worker processes (``--pool solo``, OMP_NUM_THREADS=MKL_NUM_THREADS=1, distinct hostnames, a queue
of the run's own, one Redis broker, a temporary database), with sampling forced on (threshold 100,
sample 350, 150 units per part) so the embed and assign steps fan out in parts; after a warm-up job
(each worker loads the model) and with a cold embedding cache. Which worker ran each part comes from
the workers' own logs (``job <id>: embed:3 done``); the phases' wall times from job_steps. Written to
benchmarks/results/scale_workers.json.

job: a whole job at N answer units (``python benchmarks/bench_scale.py job --units 100000``): a
temporary database (miner.db.temporary_database) filled with COPY with a synthetic study of N
answers over N/6 interviews (four session models, six fixed questions, short templated answers whose
words follow their vector's centre), every answer's and opinion unit's vector inserted into the
embeddings table as stored (float16, same synthetic mixture as `memory`) under the default
embedder's name, so the embed step finds them cached; then every step of miner.steps.STEPS, parts
one after another, in one child process that first loads MiniLM (as a worker does); per step its
wall seconds, RSS after it and peak RSS so far (ru_maxrss). The job's peak RSS is the child's.

understand: the understand step alone at N answer units, on the `job` study after its units step
and synthetic assignments (18 themes, 10% outliers by a hash of the unit id; no cluster step), the
job's param include_low_quality on (the synthetic interviews are all judged low quality: with it, the
statistics read every rating and themed unit); once per checkout in --checkouts, each in a fresh
child process that imports that checkout's miner and loads MiniLM first; per run its seconds and the
step's own peak RSS (VmHWM reset after the model loads), then the statistics alone again
(`steps.job_statistics`, rolled back: seconds and peak RSS over the RSS before it, what grows with
the study); the statistics rows must be equal every time. Written to benchmarks/results/scale_understand.json.

Results merge into benchmarks/results/scale.json (exactly the keys issue 14 names) and
scale_runs.json (every run, and why a figure is null).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "scale.json"
sys.path.insert(0, str(REPO))

from miner.assign import (SampledClusterer, SampleParams, assign_nearest, centroids_of, for_sample,  # noqa: E402
                          sample_indices)
from miner.cluster import ClusterParams, UmapHdbscanClusterer  # noqa: E402
from miner.metrics import clustering_scores  # noqa: E402

DATASETS = {"banking77": "banking77_test.csv", "clinc150": "clinc150_test.csv"}
SEEDS = (42, 1, 2)
KEYS = ("peak_rss_mib_100k", "peak_rss_mib_1m", "cluster_time_ratio_1m_100k", "nightly_vs_full",
        "sampled_nmi_drop", "sampled_ari_drop")


RUNS = RESULTS.with_name("scale_runs.json")  # every run and the notes; scale.json holds exactly KEYS


def _results() -> dict:
    results = {"peak_rss_mib_100k": None, "peak_rss_mib_1m": None, "cluster_time_ratio_1m_100k": None,
               "nightly_vs_full": None, "sampled_nmi_drop": {"banking77": None, "clinc150": None},
               "sampled_ari_drop": {"banking77": None, "clinc150": None}}
    for path in (RESULTS, RUNS):
        if path.exists():
            results.update(json.loads(path.read_text()))
    return results


def _save(results: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({k: results[k] for k in KEYS}, indent=2) + "\n")
    RUNS.write_text(json.dumps({k: v for k, v in results.items() if k not in KEYS}, indent=2) + "\n")


def _embed(name: str, cache: Path | None = None) -> tuple[np.ndarray, list[str]]:
    """The set's vectors (today's embedder) and gold labels; the vectors kept in cache/NAME.npy
    (outside the repository) when a cache folder is given, so a rerun skips the embedding."""
    import pandas as pd

    df = pd.read_csv(DATA / DATASETS[name])
    gold = df["category"].astype(str).tolist()
    path = cache / f"{name}.npy" if cache else None
    if path is not None and path.exists():
        vectors = np.load(path)
        if len(vectors) == len(gold):
            return vectors, gold
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from miner.embed import SentenceTransformerEmbedder
    from miner.settings import Settings

    vectors = SentenceTransformerEmbedder(Settings().embedding_model).embed(df["text"].astype(str).tolist())
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors, gold


VARIANTS = ("full", "sampled_centroid", "sampled_knn", "full_float16", "oracle_centroid", "sampled_refine3")


def refine(vectors: np.ndarray, labels: np.ndarray, index: np.ndarray, passes: int) -> np.ndarray:
    """Streamed k-means passes after the assignment (measured, not in the product): each theme's centroid
    becomes the mean of all its units, sampled and assigned, and the units outside the sample go to
    their nearest new centroid; the sample keeps its fitted labels."""
    labels = labels.copy()
    rest = np.setdiff1d(np.arange(len(vectors)), index)
    for _ in range(passes):
        ids, cents = centroids_of(vectors, labels)
        labels[rest] = assign_nearest(vectors[rest], ids, cents)
    return labels


def quality(seeds: tuple[int, ...], variants: tuple[str, ...] = VARIANTS, cache: Path | None = None) -> None:
    """Rows for every seed asked for; the drops in scale.json are over SEEDS only (other seeds are the
    check that a choice holds beyond the reported ones)."""
    results = _results()
    rows = results.setdefault("quality_rows", {})
    for name in DATASETS:
        vectors, gold = _embed(name, cache)
        half = len(vectors) // 2
        for seed in seeds:
            inner = UmapHdbscanClusterer(ClusterParams(seed=seed))
            index = sample_indices(len(vectors), half, seed)
            fitted: dict[str, np.ndarray] = {}
            for label in variants:
                started = time.perf_counter()
                if label == "full":
                    labels = inner.fit(vectors)
                elif label == "sampled_centroid":
                    labels = SampledClusterer(inner, SampleParams(0, half, seed), "centroid").fit(vectors)
                elif label == "sampled_knn":
                    labels = SampledClusterer(inner, SampleParams(0, half, seed), "knn").fit(vectors)
                elif label == "full_float16":
                    labels = inner.fit(vectors.astype(np.float16).astype(np.float32))
                elif label == "oracle_centroid":
                    # The full fit's own labels on the sample, the rest to their nearest centroid: what
                    # the assignment alone costs, with a sample fit as good as the full one.
                    full = fitted["full"] if "full" in fitted else inner.fit(vectors)
                    labels = full.copy()
                    ids, cents = centroids_of(vectors[index], full[index])
                    rest = np.setdiff1d(np.arange(len(vectors)), index)
                    labels[rest] = assign_nearest(vectors[rest], ids, cents)
                elif label == "sampled_refine3":
                    sampled = fitted["sampled_centroid"] if "sampled_centroid" in fitted else SampledClusterer(
                        inner, SampleParams(0, half, seed), "centroid").fit(vectors)
                    labels = refine(vectors, sampled, index, 3)
                else:
                    raise ValueError(f"unknown variant {label!r}; choose from {VARIANTS}")
                fitted[label] = np.asarray(labels, dtype=np.int64)
                scores = clustering_scores(gold, labels)
                rows[f"{name}/{seed}/{label}"] = {"nmi": round(100 * float(scores["nmi"]), 2),
                                                  "ari": round(100 * float(scores["ari"]), 2),
                                                  "clusters": int(scores["clusters"]),
                                                  "seconds": round(time.perf_counter() - started, 1)}
                print(name, seed, label, rows[f"{name}/{seed}/{label}"], flush=True)
                _save(results)
    for metric, key in (("nmi", "sampled_nmi_drop"), ("ari", "sampled_ari_drop")):
        for name in DATASETS:
            drops = [rows[f"{name}/{s}/full"][metric] - rows[f"{name}/{s}/sampled_centroid"][metric]
                     for s in SEEDS if f"{name}/{s}/sampled_centroid" in rows and f"{name}/{s}/full" in rows]
            results[key][name] = round(float(np.mean(drops)), 2) if drops else None
    _save(results)
    print(quality_table(rows))


def quality_table(rows: dict, seeds: tuple[int, ...] = SEEDS) -> str:
    """The markdown rows of BENCHMARKS.md's quality table: mean NMI/ARI, cluster range, drops
    (full minus variant) as mean (min…max) over the seeds."""
    lines = []
    for name in DATASETS:
        for variant in VARIANTS:
            got = [rows.get(f"{name}/{s}/{variant}") for s in seeds]
            full = [rows.get(f"{name}/{s}/full") for s in seeds]
            if not all(got) or not all(full):
                continue
            cells = [f"{np.mean([g[m] for g in got]):.2f}" for m in ("nmi", "ari")]
            cells.append(f"{min(g['clusters'] for g in got)}–{max(g['clusters'] for g in got)}")
            for m in ("nmi", "ari"):
                d = [f_[m] - g[m] for f_, g in zip(full, got)]
                cells.append("" if variant == "full" else f"{np.mean(d):.2f} ({min(d):.2f}…{max(d):.2f})")
            lines.append(f"| {name} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_synthetic(path: Path, n: int, dim: int = 384, centres: int = 200, seed: int = 0) -> None:
    """n unit vectors around `centres` random directions (Zipf-ish sizes), float16 as the cache stores
    them, written block by block to `path` (the stand-in for the embeddings table)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, centres + 1)
    which = rng.choice(centres, size=n, p=weights / weights.sum())
    with open(path, "wb") as handle:
        for start in range(0, n, 50_000):
            picked = which[start:start + 50_000]
            block = means[picked] + 1.2 * rng.normal(size=(len(picked), dim)).astype(np.float32)
            (block / np.linalg.norm(block, axis=1, keepdims=True)).astype("<f2").tofile(handle)


def _rows(path: Path, start: int, count: int, dim: int = 384) -> np.ndarray:
    """Rows start..start+count, read from the file as the assign step streams them from Postgres."""
    flat = np.fromfile(path, dtype="<f2", count=count * dim, offset=start * dim * 2)
    return flat.reshape(-1, dim).astype(np.float32)


def _memory_child(n: int, sample: int, chunk: int) -> dict:
    """The cluster + assign path on n synthetic units, holding only the sample and one chunk at a time."""
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_scale_{n}_{os.getpid()}.f16"
    # A worker that ran embed steps holds torch and MiniLM: load them so they count in the peak.
    from miner.embed import SentenceTransformerEmbedder
    from miner.settings import Settings

    SentenceTransformerEmbedder(Settings().embedding_model).embed(["a worker that embedded before"])
    started = time.perf_counter()
    write_synthetic(path, n)
    generated = time.perf_counter()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:
        params = SampleParams(threshold=0, size=min(sample, n), seed=42)
        index = sample_indices(n, params.size, params.seed)
        # The cluster step: the sample's rows only, fetched chunk by chunk.
        block = chunk * 25
        sample_vectors = np.vstack([_rows(path, s, min(block, n - s))[index[(index >= s) & (index < s + block)] - s]
                                    for s in range(0, n, block)])
        clusterer = for_sample(UmapHdbscanClusterer(ClusterParams(seed=42)), n, len(index))
        fitted = np.asarray(clusterer.fit(sample_vectors), dtype=np.int64)
        ids, cents = centroids_of(sample_vectors, fitted)
        del sample_vectors, fitted
        fit_done = time.perf_counter()
        assigned = 0
        for start in range(0, n, chunk):  # the assign step's parts, one after another here
            labels = assign_nearest(_rows(path, start, min(chunk, n - start)), ids, cents)
            assigned += int((labels >= 0).sum())
        done = time.perf_counter()
    finally:
        path.unlink()
    return {"units": n, "sample": params.size, "clusters": int(ids.size), "assigned": assigned,
            "fit_seconds": round(fit_done - generated, 1), "assign_seconds": round(done - fit_done, 1),
            "cluster_assign_seconds": round(done - generated, 1), "generate_seconds": round(generated - started, 1),
            "peak_rss_mib_after_generating": round(rss_before, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def _peaks(results: dict, rows: dict) -> None:
    """The headline peak RSS figures from the rows the run just wrote (cluster + assign or whole job)."""
    for units, key in (("100000", "peak_rss_mib_100k"), ("1000000", "peak_rss_mib_1m")):
        if units in rows:
            results[key] = rows[units]["peak_rss_mib"]


def memory(n: int, sample: int, chunk: int) -> None:
    out = subprocess.run([sys.executable, __file__, "_child", str(n), str(sample), str(chunk)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    results = _results()
    results.setdefault("memory_rows", {})[str(n)] = row
    rows = results["memory_rows"]
    _peaks(results, rows)
    if "100000" in rows and "1000000" in rows:
        results["cluster_time_ratio_1m_100k"] = round(
            rows["1000000"]["cluster_assign_seconds"] / rows["100000"]["cluster_assign_seconds"], 2)
    _save(results)


WORKERS_RESULTS = RESULTS.with_name("scale_workers.json")


def _parts_by_worker(log_dir: Path, job_id: str) -> dict[str, str]:
    """{step key ('embed:3', 'assign:0', 'cluster'...): worker} from the workers' logs: each worker
    logs `job <id>: <step key> done` (miner.jobs.run_step) in its own file. The worker_tasks rows say
    who runs a task only while it runs, and job_steps does not name the worker."""
    import re

    done = re.compile(rf"job {re.escape(job_id)}: (\S+) done ")
    parts = {}
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            found = done.search(line)
            if found:
                parts[found.group(1)] = log.stem
    return parts


def _phase(steps: list[tuple], name: str) -> dict:
    """First start to last finish of a step's parts, and each part's own seconds."""
    rows = [s for s in steps if s[0] == name or s[0].startswith(name + ":")]
    if not rows:
        return {"parts": 0, "seconds": None}
    span = max(r[2] for r in rows) - min(r[1] for r in rows)
    return {"parts": len(rows), "seconds": round(span.total_seconds(), 2),
            "part_seconds": {r[0]: round((r[2] - r[1]).total_seconds(), 2) for r in sorted(rows, key=lambda r: r[1])}}


def workers(interviews: int, chunk: int, sample: int, threshold: int, configs: list[int], seed: int) -> None:
    """A sampled job through `count` real Celery workers (solo pool, one thread each, distinct
    hostnames) on one broker queue and a temporary database, for each count in `configs`; records
    which worker ran each part of the fanned-out embed and assign steps and the wall times."""
    import tempfile
    import uuid

    import psycopg

    from bench_embedding import BROKER_URL, fresh_database, machine, sample_interviews, store_interviews
    from bench_workers import run_job_through_workers, start_workers, stop_workers

    report = {"benchmark": "scale workers", "machine": machine(),
              "params": {"interviews": interviews, "embed_chunk": chunk, "sample_size": sample,
                         "sample_threshold": threshold, "configs": configs, "seed": seed,
                         "worker": "celery --pool solo, OMP_NUM_THREADS=MKL_NUM_THREADS=1"},
              "runs": []}
    tag = uuid.uuid4().hex[:8]
    with fresh_database() as url:
        base = {**os.environ, "MINER_DATABASE_URL": url, "MINER_BROKER_URL": BROKER_URL, "HF_HUB_OFFLINE": "1",
                "MINER_EMBED_CHUNK": str(chunk), "MINER_CLUSTER_SAMPLE_THRESHOLD": str(threshold),
                "MINER_CLUSTER_SAMPLE_SIZE": str(sample)}
        store_interviews(url, sample_interviews(interviews, seed, "scale-workers"))
        for n, count in enumerate(configs):
            log_dir = Path(tempfile.mkdtemp(prefix=f"bench-scale-workers-{count}-"))
            # A queue of this run's own, so no worker of another run (or session) takes its tasks.
            env = {**base, "MINER_QUEUE": f"miner-bench-scale-{tag}-{n}", "MINER_HOME": str(log_dir / "home")}
            processes = start_workers(env, count, 1, log_dir, f"{tag}-{n}")
            try:
                # Warm-up: a small sampled job with a part for every worker, so each loads the model
                # (and one compiles UMAP) outside the measure; then a cold embedding cache.
                warm = f"warm-up-{n}"
                store_interviews(url, sample_interviews(max(40, chunk * count // 4), 500 + n, warm))
                warm_job = run_job_through_workers(url, env, warm, timeout=3600)
                with psycopg.connect(url) as conn:
                    conn.execute("DELETE FROM embeddings")
                    conn.commit()
                job_id = run_job_through_workers(url, env, "scale-workers", timeout=7200)
                with psycopg.connect(url, autocommit=True) as conn:
                    steps = conn.execute("SELECT step, started_at, finished_at, detail FROM job_steps "
                                         "WHERE job_id = %s", (job_id,)).fetchall()
                    created, finished, counts = conn.execute(
                        "SELECT created_at, finished_at, counts FROM jobs WHERE job_id = %s", (job_id,)).fetchone()
            finally:
                stop_workers(processes)
            who = _parts_by_worker(log_dir, job_id)
            warm_who = _parts_by_worker(log_dir, warm_job)
            run = {"workers": count, "run_order": n + 1, "job_id": job_id, "units": counts.get("units"),
                   "sampled_units": counts.get("sampled_units"), "mode": counts.get("mode"),
                   "job_seconds": round((finished - created).total_seconds(), 2),
                   "embed": _phase(steps, "embed"), "cluster": _phase(steps, "cluster"),
                   "assign": _phase(steps, "assign"),
                   "worker_of_part": who,
                   "warm_up_embed_parts_per_worker": {w: sum(1 for k, v in warm_who.items()
                                                             if v == w and k.startswith("embed:"))
                                                      for w in sorted(set(warm_who.values()))}}
            for name in ("embed", "assign"):
                run[name]["parts_per_worker"] = {w: sum(1 for k, v in who.items() if v == w and k.split(":")[0] == name)
                                                 for w in sorted(set(who.values()))}
            print(json.dumps(run), flush=True)
            report["runs"].append(run)
    report["machine"]["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    report["ratio_1_over_2"] = _ratios(report["runs"])
    # Each invocation is kept (a session): seconds on shared cores need repeating in both orders.
    kept = json.loads(WORKERS_RESULTS.read_text()) if WORKERS_RESULTS.exists() else {}
    sessions = kept.get("sessions", []) + [report]
    runs = [run for session in sessions for run in session["runs"]]
    WORKERS_RESULTS.write_text(json.dumps({"benchmark": "scale workers", "sessions": sessions,
                                           "ratio_1_over_2_all_sessions": _ratios(runs)}, indent=2, default=str) + "\n")
    print(json.dumps(report["ratio_1_over_2"]), flush=True)


def _ratios(runs: list[dict]) -> dict | None:
    """Mean seconds with 1 worker over mean seconds with 2: embed phase, assign phase, whole job."""
    def mean(count: int, key: str) -> float:
        return float(np.mean([r[key]["seconds"] if isinstance(r[key], dict) else r[key]
                              for r in runs if r["workers"] == count]))

    if not {1, 2} <= {r["workers"] for r in runs}:
        return None
    return {key: round(mean(1, key) / mean(2, key), 2) for key in ("embed", "assign", "job_seconds")}


# --- job: a whole job at N answer units -------------------------------------------------------------

QUESTIONS = ("How well did the assistant understand what you needed?", "Did it meet your needs?",
             "How far did you trust its answers?", "How satisfied are you overall?",
             "What should it do better?", "Anything else you want to tell us?")
MODELS = ("model-a", "model-b", "model-c", "model-d")
_WORDS = ("answers sources tone speed detail code maths citations memory context format length privacy jokes "
          "examples steps summary translation search images errors refusals follow-ups clarity empathy bias "
          "accuracy confidence hedging links tables recipes travel health legal homework writing emails").split()
_ADJECTIVES = ("clear slow vague helpful wrong precise friendly long short repetitive careful confusing quick "
               "thorough shallow patient rude accurate outdated creative").split()


def _study_text(centre: int, serial: int, rng: np.random.Generator) -> str:
    """A short answer about the centre's topic (two topic words, one of its adjectives), unique by serial."""
    a, b = _WORDS[centre % len(_WORDS)], _WORDS[(centre * 7 + 3) % len(_WORDS)]
    adjective = _ADJECTIVES[(centre + int(rng.integers(0, 2))) % len(_ADJECTIVES)]
    return f"the {a} and {b} felt {adjective} to me in chat {serial}"


def fill_study(url: str, study: str, n: int, answers_per_interview: int = 6, dim: int = 384,
               centres: int = 200, seed: int = 0) -> dict:
    """A synthetic study of n answers over n / answers_per_interview interviews, written with COPY,
    and every answer's (and opinion unit's) vector in the embeddings table, float16 as stored, under
    the embedder's name, so the job's embed step finds them cached."""
    import hashlib

    import psycopg
    from psycopg.types.json import Jsonb

    from miner.components import embedder_from_settings
    from miner.opinion_job import opinion_units
    from miner.records import interview_from_record
    from miner.settings import Settings
    from miner.units import split_units

    model = embedder_from_settings(Settings()).name  # the cache key the job looks its vectors up by (lazy: no model load)
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(centres, dim)).astype(np.float32)
    weights = 1.0 / np.arange(1, centres + 1)
    weights /= weights.sum()
    interviews = -(-n // answers_per_interview)
    started, written, vectors_written = time.perf_counter(), 0, 0
    with psycopg.connect(url) as conn:
        for first in range(0, interviews, 5000):
            block = range(first, min(interviews, first + 5000))
            records = []
            for i in block:
                k = min(answers_per_interview, n - i * answers_per_interview)
                centre = rng.choice(centres, size=k, p=weights)
                turns = []
                for q, c in enumerate(centre):
                    turns += [{"role": "assistant", "content": QUESTIONS[q % len(QUESTIONS)]},
                              {"role": "user", "content": _study_text(int(c), i * answers_per_interview + q, rng)}]
                record = {"sessionModel": MODELS[i % len(MODELS)], "interviewModel": "interviewer-1",
                          "session": [{"role": "user", "content": f"help me with task {i}"},
                                      {"role": "assistant", "content": "Here is one way to do it."}],
                          "interview": turns}
                interview_id = hashlib.sha256(f"{study}/{i}".encode()).hexdigest()
                records.append((interview_id, record, centre))
            typed = [interview_from_record(r, interview_id=iid, study=study, source_file="synthetic",
                                           source_position=pos + 1, external_id=None)
                     for pos, (iid, r, _) in zip(block, records)]
            answers = split_units(typed)
            found, _ = opinion_units(answers)
            centre_of = {}
            for (iid, _, centre) in records:
                for q, c in enumerate(centre):
                    centre_of[f"{iid}:{q}"] = int(c)
            by_hash = {u.answer_hash: centre_of[u.unit_id] for u in answers}
            by_hash.update({u.answer_hash: centre_of[u.answer_unit_id] for u in found})
            hashes = list(by_hash)
            picked = np.array([by_hash[h] for h in hashes])
            rows = means[picked] + 1.2 * rng.normal(size=(len(picked), dim)).astype(np.float32)
            rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype("<f2")
            with conn.cursor() as cur:
                with cur.copy("COPY interviews (interview_id, study, session_model, interview_model, record, "
                              "source_file, source_position) FROM STDIN") as copy:
                    for pos, (iid, record, _) in zip(block, records):
                        copy.write_row((iid, study, record["sessionModel"], record["interviewModel"], Jsonb(record),
                                        "synthetic", pos + 1))
                with cur.copy("COPY embeddings (answer_hash, model, dim, vector) FROM STDIN") as copy:
                    for h, row in zip(hashes, rows):
                        copy.write_row((h, model, dim, row.tobytes()))
            conn.commit()
            written += len(answers)
            vectors_written += len(hashes)
    return {"interviews": interviews, "answers": written, "vectors": vectors_written,
            "fill_seconds": round(time.perf_counter() - started, 1)}


def _rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _job_child(url: str, study: str) -> dict:
    """The job's steps in this process, one after another like one worker taking every task; per step:
    wall seconds (its parts summed), the process's RSS after it and its peak RSS so far (ru_maxrss)."""
    import psycopg

    from miner import jobs, repository_jobs
    from miner.components import Components
    from miner.settings import Settings
    from miner.steps import STEPS

    settings = Settings(database_url=url)
    components = Components.from_settings(settings)
    components.embedder.embed(["a worker loads its embedder once"])  # as a worker that embedded holds it
    steps = {"model_loaded": {"rss_mib": round(_rss_mib(), 1),
                              "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}}
    started = time.perf_counter()
    with psycopg.connect(url) as conn:
        job_id = repository_jobs.create_job(conn, study)
        conn.commit()
        for step in STEPS:
            began = time.perf_counter()
            parts = jobs.parts_of(conn, job_id, step)
            for part in parts:
                jobs.run_step(conn, job_id, step.name, components, part)
            steps[step.name] = {"seconds": round(time.perf_counter() - began, 1), "parts": len(parts),
                                "rss_mib": round(_rss_mib(), 1),
                                "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
            print(step.name, steps[step.name], file=sys.stderr, flush=True)
        job = repository_jobs.get_job(conn, job_id)
        themes = conn.execute("SELECT count(*) FROM themes WHERE job_id = %s", (job_id,)).fetchone()[0]
        assigned = conn.execute("SELECT count(*) FILTER (WHERE theme_id IS NOT NULL), count(*) FROM assignments "
                                "WHERE job_id = %s", (job_id,)).fetchone()
    return {"status": job.status, "counts": job.counts, "themes": themes, "assigned": assigned[0],
            "assignment_rows": assigned[1], "job_seconds": round(time.perf_counter() - started, 1), "steps": steps,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def job(n: int) -> None:
    """Fill a temporary database with an n-answer synthetic study, run the whole job in a child process."""
    from miner.db import temporary_database

    admin = os.environ.get("MINER_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    study = f"synthetic-{n}"
    with temporary_database(admin, prefix="bench_scale") as url:
        filled = fill_study(url, study, n)
        print("filled", filled, flush=True)
        out = subprocess.run([sys.executable, __file__, "_job", url, study], stdout=subprocess.PIPE, text=True,
                             check=True)
        row = {**json.loads(out.stdout.strip().splitlines()[-1]), "fill": filled, "units_requested": n}
    print(json.dumps(row), flush=True)
    results = _results()
    results.setdefault("job_rows", {})[str(n)] = row
    _peaks(results, results["job_rows"])
    _save(results)


UNDERSTAND_RESULTS = REPO / "benchmarks" / "results" / "scale_understand.json"
_STATISTICS = {"engagement_stats": "session_model", "rating_stats": "session_model, dimension",
               "prevalence_stats": "theme_id, session_model", "prevalence_tests": "theme_id",
               "correlation_stats": "dimension_a, dimension_b", "sentiment_stats": "theme_id, session_model"}


# The child imports the checkout's miner before this file (which puts its own checkout first on the path).
_UNDERSTAND_CHILD = ("import json, sys; sys.path.insert(0, sys.argv[1]); import miner; "
                     "sys.path.insert(0, sys.argv[2]); import bench_scale; "
                     "print(json.dumps(bench_scale._understand_child(sys.argv[3], sys.argv[4])))")


def _understand_child(url: str, job_id: str) -> dict:
    """The understand step alone, by the miner imported first (a checkout's), in a process that first
    loads MiniLM as a worker does: its seconds, RSS after it, and the peak RSS before and after it."""
    import psycopg

    import miner
    from miner import jobs
    from miner.components import Components
    from miner.settings import Settings

    components = Components.from_settings(Settings(database_url=url))
    components.embedder.embed(["a worker loads its embedder once"])
    before, rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, _rss_mib()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here on: the step's own peak (Linux)
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        jobs.run_step(conn, job_id, "understand", components)
        seconds, hwm, rss_after = round(time.perf_counter() - began, 1), _hwm_mib(), _rss_mib()
        # The statistics alone (what grows with the study, not with the part): again, rolled back.
        from miner import repository_jobs, steps

        options = steps.understand_options(repository_jobs.get_job(conn, job_id), components)
        rss_stats = _rss_mib()
        Path("/proc/self/clear_refs").write_text("5")
        began = time.perf_counter()
        steps.job_statistics(conn, job_id, options, "again")
        stats_seconds, stats_hwm = round(time.perf_counter() - began, 1), _hwm_mib()
        conn.rollback()
    return {"miner": str(Path(miner.__file__).parent), "seconds": seconds,
            "peak_rss_mib_before": round(before, 1), "rss_mib_before": round(rss_before, 1),
            "step_peak_rss_mib": round(hwm, 1), "rss_mib": round(rss_after, 1),
            "statistics_seconds": stats_seconds, "statistics_rss_mib_before": round(rss_stats, 1),
            "statistics_peak_rss_mib": round(stats_hwm, 1)}


def _hwm_mib() -> float:
    """The process's peak RSS since its last reset (/proc/self/clear_refs), VmHWM."""
    return next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                if line.startswith("VmHWM:")) / 1024


def understand(n: int, checkouts: list[str]) -> None:
    """The understand step alone at n answer units, once per checkout in `checkouts` (their order),
    on one filled database: the synthetic study of `job`, its units step, then synthetic assignments
    (18 themes and 10% outliers by a hash of the unit id: no cluster step), then understand in a
    fresh child process per checkout. Its statistics rows must be the same every time."""
    import psycopg

    from miner import jobs, repository_jobs
    from miner.components import Components
    from miner.db import temporary_database
    from miner.settings import Settings

    admin = os.environ.get("MINER_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    study = f"synthetic-{n}"
    rows, statistics = [], []
    with temporary_database(admin, prefix="bench_scale") as url:
        filled = fill_study(url, study, n)
        print("filled", filled, flush=True)
        with psycopg.connect(url) as conn:
            # Every interview in the statistics (the synthetic ones are all judged low quality): the
            # statistics read every rating and themed unit, the most they can.
            job_id = repository_jobs.create_job(conn, study, params={"include_low_quality": True})
            conn.commit()
            began = time.perf_counter()
            jobs.run_step(conn, job_id, "units", Components.from_settings(Settings(database_url=url)))
            units_seconds = round(time.perf_counter() - began, 1)
            conn.execute("""INSERT INTO assignments (job_id, unit_id, theme_id)
                            SELECT job_id, unit_id, CASE WHEN abs(hashtext(unit_id)) %% 10 = 0 THEN NULL
                                                         ELSE abs(hashtext(unit_id)) %% 18 END
                            FROM job_units WHERE job_id = %s""", (job_id,))
            conn.execute("""INSERT INTO themes (job_id, theme_id, label, keywords, labeller, answers, interviews)
                            SELECT %s, t, 'theme ' || t, '{}', 'synthetic', 0, 0 FROM generate_series(0, 17) t""",
                         (job_id,))
            conn.commit()
        for code in checkouts:
            with psycopg.connect(url) as conn:  # a fresh start of the step each time
                conn.execute("DELETE FROM job_steps WHERE job_id = %s AND step LIKE 'understand%%'", (job_id,))
                for table in ("unit_insights", "ratings", "quality_verdicts", "interview_engagement"):
                    conn.execute(f"DELETE FROM {table} WHERE job_id = %s", (job_id,))
                conn.commit()
            child = [sys.executable, "-c", _UNDERSTAND_CHILD, code, str(Path(__file__).parent), url, job_id]
            out = subprocess.run(child, stdout=subprocess.PIPE, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
            with psycopg.connect(url) as conn:
                statistics.append({t: conn.execute(f"SELECT * FROM {t} WHERE job_id = %s ORDER BY {order}",
                                                   (job_id,)).fetchall() for t, order in _STATISTICS.items()})
    same = all(s == statistics[0] for s in statistics)
    row = {"units_requested": n, "fill": filled, "units_seconds": units_seconds, "runs": rows,
           "statistics_rows": {t: len(r) for t, r in statistics[0].items()}, "same_statistics": same}
    print(json.dumps(row), flush=True)
    results = json.loads(UNDERSTAND_RESULTS.read_text()) if UNDERSTAND_RESULTS.exists() else {}
    results.setdefault("runs", []).append({"at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                           "load": os.getloadavg(), **row})
    UNDERSTAND_RESULTS.write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(_memory_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_job":
        print(json.dumps(_job_child(sys.argv[2], sys.argv[3]), default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("quality", "memory", "workers", "job", "understand"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=None,
                        help=f"units fitted on (memory: {SampleParams().size}; workers: 350)")
    parser.add_argument("--chunk", type=int, default=None, help="units per assign part (memory: 2000; workers: 150)")
    parser.add_argument("--interviews", type=int, default=200, help="workers: the study's interviews")
    parser.add_argument("--threshold", type=int, default=100, help="workers: MINER_CLUSTER_SAMPLE_THRESHOLD")
    parser.add_argument("--configs", default="2,1", help="workers: worker counts, in run order")
    parser.add_argument("--cache", type=Path, default=None,
                        help="quality: folder (outside the repository) keeping the sets' embeddings between runs")
    parser.add_argument("--checkouts", nargs="+", default=None,
                        help="understand: checkouts (roots) whose understand step runs, in order (default: this one)")
    args = parser.parse_args()
    if args.what == "workers":
        workers(args.interviews, args.chunk or 150, args.sample or 350, args.threshold,
                [int(c) for c in args.configs.split(",")], seed=11)
    elif args.what == "quality":
        quality(tuple(args.seeds), tuple(args.variants), args.cache)
    elif args.what == "job":
        job(args.units)
    elif args.what == "understand":
        understand(args.units, args.checkouts or [str(REPO)])
    else:
        memory(args.units, args.sample or SampleParams().size, args.chunk or 2000)


if __name__ == "__main__":
    main()

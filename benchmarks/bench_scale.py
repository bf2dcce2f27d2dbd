"""Scale benchmark: fit on a sample and assign the rest (miner.assign), float16 embeddings, memory.

Run: ``python benchmarks/bench_scale.py quality`` (~10 min on 2 cores) and
``python benchmarks/bench_scale.py memory --units 100000`` / ``--units 1000000`` (synthetic vectors), and
``python benchmarks/bench_scale.py job --units 100000`` / ``--units 1000000`` (a whole job).

quality: banking77 and clinc150 (../shared/data) embedded once with all-MiniLM-L6-v2; the default
clusterer fitted on all texts vs fitted on a seeded half and the other half assigned (nearest
centroid, or a 15-nearest-sampled-neighbours vote), and the full fit on float16-rounded vectors;
seeds 42, 1, 2; drops in NMI/ARI points (full minus sampled, mean over seeds, spread = min..max).

memory: the cluster + assign path of a job at N units on synthetic vectors (a mixture of 200
Gaussian directions in 384 dims, Zipf-ish sizes, unit length, float16 as stored): sample fit, then
the assignment in chunks as the `assign` step does, in a child process whose peak RSS is ru_maxrss;
the child first loads torch and MiniLM (a worker that embedded holds them). The vectors are read
from a file standing in for the embeddings table, so Postgres's own cost is not in the figure.

job: a whole job at N answer units (``python benchmarks/bench_scale.py job --units 100000``): a
temporary database (miner.db.temporary_database) filled with COPY with a synthetic study of N
answers over N/6 interviews (four session models, six fixed questions, short templated answers whose
words follow their vector's centre), every answer's and opinion unit's vector inserted into the
embeddings table as stored (float16, same synthetic mixture as `memory`) under the default
embedder's name, so the embed step finds them cached; then every step of miner.steps.STEPS, parts
one after another, in one child process that first loads MiniLM (as a worker does); per step its
wall seconds, RSS after it and peak RSS so far (ru_maxrss). The job's peak RSS is the child's.

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


def _embed(name: str) -> tuple[np.ndarray, list[str]]:
    import pandas as pd

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from miner.embed import SentenceTransformerEmbedder
    from miner.settings import Settings

    df = pd.read_csv(DATA / DATASETS[name])
    embedder = SentenceTransformerEmbedder(Settings().embedding_model)
    return embedder.embed(df["text"].astype(str).tolist()), df["category"].astype(str).tolist()


def quality(seeds: tuple[int, ...]) -> None:
    results = _results()
    rows = results.setdefault("quality_rows", {})
    for name in DATASETS:
        vectors, gold = _embed(name)
        half = SampleParams(threshold=0, size=len(vectors) // 2)
        for seed in seeds:
            inner = UmapHdbscanClusterer(ClusterParams(seed=seed))
            variants = {
                "full": inner,
                "sampled_centroid": SampledClusterer(inner, SampleParams(0, half.size, seed), "centroid"),
                "sampled_knn": SampledClusterer(inner, SampleParams(0, half.size, seed), "knn"),
                "full_float16": "f16",
            }
            for label, clusterer in variants.items():
                started = time.perf_counter()
                if clusterer == "f16":
                    labels = inner.fit(vectors.astype(np.float16).astype(np.float32))
                else:
                    labels = clusterer.fit(vectors)
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
                     for s in seeds if f"{name}/{s}/sampled_centroid" in rows]
            results[key][name] = round(float(np.mean(drops)), 2) if drops else None
    _save(results)


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


def memory(n: int, sample: int, chunk: int) -> None:
    out = subprocess.run([sys.executable, __file__, "_child", str(n), str(sample), str(chunk)],
                         capture_output=True, text=True, check=True)
    row = json.loads(out.stdout.strip().splitlines()[-1])
    print(row, flush=True)
    results = _results()
    results.setdefault("memory_rows", {})[str(n)] = row
    rows = results["memory_rows"]
    if "100000" in rows:
        results["peak_rss_mib_100k"] = rows["100000"]["peak_rss_mib"]
    if "1000000" in rows:
        results["peak_rss_mib_1m"] = rows["1000000"]["peak_rss_mib"]
    if "100000" in rows and "1000000" in rows:
        results["cluster_time_ratio_1m_100k"] = round(
            rows["1000000"]["cluster_assign_seconds"] / rows["100000"]["cluster_assign_seconds"], 2)
    _save(results)


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
    rows = results["job_rows"]
    if "100000" in rows:
        results["peak_rss_mib_100k"] = rows["100000"]["peak_rss_mib"]
    if "1000000" in rows:
        results["peak_rss_mib_1m"] = rows["1000000"]["peak_rss_mib"]
    _save(results)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        print(json.dumps(_memory_child(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_job":
        print(json.dumps(_job_child(sys.argv[2], sys.argv[3]), default=str))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("quality", "memory", "job"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=SampleParams().size)
    parser.add_argument("--chunk", type=int, default=2000)
    args = parser.parse_args()
    if args.what == "quality":
        quality(tuple(args.seeds))
    elif args.what == "job":
        job(args.units)
    else:
        memory(args.units, args.sample, args.chunk)


if __name__ == "__main__":
    main()

"""Wall time of one analysis job (miner.pipeline.run_job, in process, offline) on a sample study, on
a fresh scratch database with an empty embedding cache; per step from job_steps.

    python benchmarks/bench_job_time.py --interviews 300 [--out benchmarks/results/job_time.json]

Run with PYTHONPATH at another checkout to time that version of the job (the before/after of
BENCHMARKS.md § Opinions); the script itself only uses run_job, job_steps and miner.sample.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from miner import repository, repository_jobs
from miner.components import Components
from miner.contract import scratch_database
from miner.ingest import to_interview
from miner.pipeline import run_job
from miner.sample import generate_sample
from miner.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/job_time.json"))
    parser.add_argument("--database-url", default=os.environ.get("MINER_ADMIN_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()
    components = Components.from_settings(Settings())
    components.embedder.embed(["warm up"])  # the model load is not the job's
    samples = generate_sample(args.interviews, seed=args.seed)
    with scratch_database(args.database_url) as conn:
        repository.save_interviews(conn, [to_interview(s.record, "bench", "sample.jsonl", n)
                                          for n, s in enumerate(samples, start=1)])
        job_id = repository_jobs.create_job(conn, "bench")
        conn.commit()
        started = time.perf_counter()
        run_job(conn, job_id, components)
        seconds = time.perf_counter() - started
        steps = {step: round(float(s), 1) for step, s in conn.execute(
            "SELECT step, extract(epoch FROM finished_at - started_at) FROM job_steps WHERE job_id = %s "
            "ORDER BY started_at", (job_id,)).fetchall()}
        counts = repository_jobs.get_job(conn, job_id).counts
    row = {"label": args.label, "interviews": args.interviews, "seed": args.seed, "seconds": round(seconds, 1),
           "steps": steps, "units": counts.get("units"), "themes": counts.get("themes")}
    print(json.dumps(row), flush=True)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows + [row], indent=1) + "\n")


if __name__ == "__main__":
    main()

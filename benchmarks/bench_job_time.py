"""Wall time of one analysis job (miner.pipeline.run_job, in process, offline) on a sample study, on
a fresh scratch database with an empty embedding cache; per step from job_steps.

    python benchmarks/bench_job_time.py --interviews 300 [--out FILE]   # one job, appended to FILE
    python benchmarks/bench_job_time.py --trees before=/path/a now=/path/b --pairs 3

With --trees, each job runs in a subprocess with PYTHONPATH at that checkout, alternating (a, b, a,
b, ...), and benchmarks/results/job_time.json gets the runs, the load average and each pair's ratio
(second tree / first) — the before/after of BENCHMARKS.md § Opinions. The child only uses run_job,
job_steps and miner.sample, so older checkouts run it too. Each job has its own scratch database, so
the embedding cache is empty for every run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def _commit(tree: str) -> str:
    return subprocess.run(["git", "-C", tree, "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()


def compare(args: argparse.Namespace) -> None:
    """Alternate one job per tree, --pairs times; write the runs and per-pair ratios to --out."""
    trees = dict(t.split("=", 1) for t in args.trees)
    (first, first_tree), (second, second_tree) = trees.items()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for pair in range(args.pairs):
            for label, tree in ((first, first_tree), (second, second_tree)):
                out = Path(tmp) / f"{label}-{pair}.json"
                load = os.getloadavg()[0]
                subprocess.run([sys.executable, __file__, "--interviews", str(args.interviews), "--seed",
                                str(args.seed), "--label", label, "--out", str(out)],
                               env={**os.environ, "PYTHONPATH": tree}, check=True)
                row = json.loads(out.read_text())[0]
                runs.append({**row, "pair": pair, "commit": _commit(tree),
                             "load_1min_start": round(load, 1), "load_1min_end": round(os.getloadavg()[0], 1)})
    ratios = [round(b["seconds"] / a["seconds"], 3) for a, b in zip(runs[0::2], runs[1::2])]
    result = {"measured_at": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python benchmarks/bench_job_time.py " + " ".join(sys.argv[1:]),
              "interviews": args.interviews, "seed": args.seed,
              "trees": {first: _commit(first_tree), second: _commit(second_tree)},
              "ratio": f"{second}/{first}", "ratios": ratios, "ratio_median": statistics.median(ratios),
              "ratio_min": min(ratios), "ratio_max": max(ratios), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interviews", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label", default="")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/job_time.json"))
    parser.add_argument("--database-url", default=os.environ.get("MINER_ADMIN_URL",
                                                                 "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--trees", nargs=2, metavar="LABEL=CHECKOUT",
                        help="time two checkouts in alternation (subprocesses with PYTHONPATH at each)")
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()
    if args.trees:
        compare(args)
        return
    from miner import repository, repository_jobs
    from miner.components import Components
    from miner.contract import scratch_database
    from miner.ingest import to_interview
    from miner.pipeline import run_job
    from miner.sample import generate_sample
    from miner.settings import Settings

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
    import miner
    row = {"label": args.label, "miner": str(Path(miner.__file__).parent), "interviews": args.interviews,
           "seed": args.seed, "seconds": round(seconds, 1), "steps": steps,
           "units": counts.get("units"), "themes": counts.get("themes")}
    print(json.dumps(row), flush=True)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows + [row], indent=1) + "\n")


if __name__ == "__main__":
    main()

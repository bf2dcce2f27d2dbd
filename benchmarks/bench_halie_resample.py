"""HALIE crossword resampled: how stable are the aligned / against cell counts of a theme clusterer and
a stance estimator when only the order of the units or the set of interviews changes?

The job orders a study's units by their ids, which carry the study's name, so the same answers under
another study name reach UMAP in another order, and the published themes and cells can differ
(bench_halie_study.py with a kept database names each run's study afresh). This bench replays the
job's cluster step and statistics in memory on the units, vectors and low-quality exclusions of the
latest job in a database bench_halie_study.py ran in (`--database-url`), under:

- `order`: the same units in a random order (seeded): what another study name would give;
- `subset`: the units of a random 80% of the interviews (seeded), in their order.

Per variant (clusterer's max_share × stance estimator and threshold): themes, aligned and against
significant cells (scored as bench_halie_study.py scores the published cells), mixed themes over 20%.

    python benchmarks/bench_halie_study.py --database-url URL      # once: the job's units and vectors
    python benchmarks/bench_halie_resample.py --database-url URL --mode order --seeds 0 1 2 3 4
        [--max-share none 0.2] [--stance "anchor 0.1" "vader+anchor 0.1"] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg

from bench_halie_study import DATA, helpfulness, rated_above_rest, verdict
from miner import repository_jobs, repository_nightly
from miner import repository_runs as runs
from miner.components import Components
from miner.eval_opinions import OpinionClusterer
from miner.opinion_job import min_theme_size, split_by_stance, theme_stances
from miner.settings import Settings
from miner.stance import AnchorStance, OpinionStance, VaderStance, stance_of_score
from miner.stats import UnitOf, theme_prevalence
from miner.themes import number_clusters
from miner.components import THEME_SELECTION


def job_state(url: str, embedder) -> dict:
    """The latest job's units (job order), answers, stored vectors and low-quality interviews."""
    with psycopg.connect(url) as conn:
        job = conn.execute("SELECT job_id FROM jobs ORDER BY created_at DESC LIMIT 1").fetchone()[0]
        units = repository_jobs.load_job_units(conn, job)
        answers = [UnitOf(*row) for row in conn.execute(  # the job's answers, where each comes from
            """SELECT u.unit_id, u.interview_id, u.session_model FROM job_answers j JOIN units u USING (unit_id)
               WHERE j.job_id = %s ORDER BY j.position""", (job,))]
        cached = runs.load_vectors(conn, embedder.name, units)
        excluded = repository_nightly.low_quality_interviews(conn, job)
    vectors = np.vstack([cached[u.answer_hash] for u in units]).astype(np.float32)
    return {"units": units, "answers": answers, "vectors": vectors, "excluded": excluded}


def stance_scores(texts: list[str], vectors: np.ndarray, embedder) -> dict[str, np.ndarray]:
    anchor = AnchorStance(embedder).scores(texts, vectors)
    vader = VaderStance().scores(texts)
    return {"anchor": anchor, "vader+anchor": vader + anchor, "vader+0.5anchor": vader + 0.5 * anchor,
            "opinion": OpinionStance(embedder).scores(texts, vectors)}


def score_fit(found: np.ndarray, units, stances: list[str], answers, excluded: set[str], models: dict) -> dict:
    """The job's stance split, theme stances and theme × model cells, scored against the ratings."""
    labels = number_clusters(split_by_stance(found, stances, min_theme_size(len(units))))
    themed = [replace(u, stance=s) for u, s in zip(units, stances)]
    stance_of = theme_stances(themed, labels)
    cells, _ = theme_prevalence(list(answers) + themed, np.concatenate([np.full(len(answers), -1), labels]),
                                excluded)
    verdicts = Counter(verdict(stance_of[c.theme_id], c.prevalence > c.rest_prevalence,
                               models[c.session_model]["above"]) for c in cells if c.significant)
    sizes = Counter(int(t) for t in labels if t >= 0)
    return {"themes": len(sizes), "largest_share": round(max(sizes.values()) / len(units), 3),
            "aligned": verdicts["aligned"], "against": verdicts["against"],
            "mixed_over_20pct": sum(stance_of[t] == "mixed" and n > 0.2 * len(units) for t, n in sizes.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--mode", choices=["order", "subset"], default="order")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--max-share", nargs="+", default=["none", "0.2"])
    parser.add_argument("--stance", nargs="+", default=["anchor 0.1", "vader+anchor 0.1"],
                        help="ESTIMATOR THRESHOLD: anchor, vader+anchor, vader+0.5anchor, opinion")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/halie_resample.json"))
    args = parser.parse_args()
    settings = Settings()
    parts = Components.from_settings(settings, llm_client=None)
    state = job_state(args.database_url, parts.embedder)
    units, vectors = state["units"], state["vectors"]
    models = rated_above_rest(helpfulness(DATA / "halie_crossword_ratings.csv"))
    scores = stance_scores([u.answer for u in units], vectors, parts.embedder)
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        answers = state["answers"]
        if args.mode == "order":
            index = rng.permutation(len(units))
        else:
            ids = sorted({a.interview_id for a in answers})
            keep = set(rng.choice(ids, size=int(0.8 * len(ids)), replace=False).tolist())
            index = np.array([i for i, u in enumerate(units) if u.interview_id in keep])
            answers = [a for a in answers if a.interview_id in keep]
        picked = [units[i] for i in index]
        for share in args.max_share:
            max_share = None if share == "none" else float(share)
            found = OpinionClusterer(seed=settings.seed, selection=THEME_SELECTION, max_share=max_share).fit(
                vectors[index])
            for spec in args.stance:
                name, threshold = spec.rsplit(" ", 1)
                stances = [stance_of_score(s, float(threshold)) for s in scores[name][index]]
                rows.append({"mode": args.mode, "seed": seed, "max_share": max_share, "stance": spec,
                             **score_fit(found, picked, stances, answers, state["excluded"], models)})
                print(json.dumps(rows[-1]), flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""HALIE crossword in memory: how the theme clusterer and the unit stance change the significant
theme × model cells, to find what bench_halie_study.py's misses come from.

The job's path without the database: opinion units → vectors → stance → clusterer → stance split
(miner.opinion_job) → miner.stats.theme_prevalence (one-vs-rest Fisher, BH over all cells), scored
as bench_halie_study.py scores the published cells. No low-quality interview is left out here (the
job leaves out those miner.quality flags: 2 of 304), and the units come in ingest order, not the job's
(by unit id, which carries the study name): a variant's count can differ from the job's by a cell or
two for that reason alone; bench_halie_resample.py measures over unit orders and subsets.

    python benchmarks/bench_halie_variants.py [--cache /tmp/halie_vectors.npz]
        [--out benchmarks/results/halie_variants.json]
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench_halie_study import DATA, helpfulness, rated_above_rest, verdict
from bench_opinion_job import VectorCache
from miner.components import Components, theme_clusterer_from_settings
from miner.eval_opinions import OpinionClusterer
from miner.ingest import ingest_file
from miner.opinion_job import min_theme_size, opinion_units, split_by_stance, theme_stances
from miner.settings import Settings
from miner.stance import AnchorStance, VaderStance, stance_of_score
from miner.stats import theme_prevalence
from miner.themes import number_clusters
from miner.units import split_units


def capped(vectors: np.ndarray, max_share: float, fraction: float = 0.015) -> np.ndarray:
    """The job's clusters, each holding more than `max_share` of the units clustered again on its own."""
    return OpinionClusterer(seed=42, fraction=fraction, selection="eom", max_share=max_share).fit(vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="an .npz of text vectors kept across runs")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/halie_variants.json"))
    args = parser.parse_args()
    settings = Settings()
    parts = Components.from_settings(settings, llm_client=None)
    interviews = ingest_file(DATA / "halie_crossword.jsonl", "halie", settings.max_record_bytes).interviews
    answers = split_units(list(interviews))
    units, _ = opinion_units(answers)
    texts = [u.answer for u in units]
    vectors = VectorCache(parts.embedder, args.cache).embed(texts)
    models = rated_above_rest(helpfulness(DATA / "halie_crossword_ratings.csv"))
    anchor = AnchorStance(parts.embedder).scores(texts, vectors)
    vader = VaderStance().scores(texts)
    stances = {"anchor 0.1 (job)": [stance_of_score(a, 0.1) for a in anchor],
               "anchor 0.2": [stance_of_score(a, 0.2) for a in anchor],
               "vader 0.05": [stance_of_score(v, 0.05) for v in vader],
               "vader + anchor, 0.1": [stance_of_score(v + a, 0.1) for v, a in zip(vader, anchor)]}
    clusterings = {"job (eom, 1.5%)": lambda: theme_clusterer_from_settings(settings).fit(vectors),
                   "leaf, 1.5%": lambda: OpinionClusterer(seed=settings.seed, selection="leaf").fit(vectors),
                   "eom, clusters > 30% re-clustered": lambda: capped(vectors, 0.3),
                   "eom, clusters > 20% re-clustered": lambda: capped(vectors, 0.2)}
    rows = []
    for cname, fit in clusterings.items():
        found = fit()
        for sname, unit_stance in stances.items():
            themed = [replace(u, stance=s) for u, s in zip(units, unit_stance)]
            labels = number_clusters(split_by_stance(found, unit_stance, min_theme_size(len(units))))
            theme_stance = theme_stances(themed, labels)
            cells, _ = theme_prevalence(list(answers) + themed,
                                        np.concatenate([np.full(len(answers), -1), labels]), set())
            verdicts = Counter(verdict(theme_stance[c.theme_id], c.prevalence > c.rest_prevalence,
                                       models[c.session_model]["above"]) for c in cells if c.significant)
            sizes = Counter(int(t) for t in labels if t >= 0)
            rows.append({"clusterer": cname, "stance": sname, "themes": len(sizes),
                         "largest_share": round(max(sizes.values()) / len(units), 3),
                         "aligned": verdicts["aligned"], "against": verdicts["against"],
                         "unscored": verdicts["unscored"],
                         "mixed_over_20pct": sum(theme_stance[t] == "mixed" and n > 0.2 * len(units)
                                                 for t, n in sizes.items())})
            print(json.dumps(rows[-1]), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""The job's opinion layer on sample studies (issue 12.8): answers → opinion units → embed →
the default clusterer → stance split, scored against the planted themes.

Per size and seed: ARI of the themes against the planted labels (over opinion units, each
carrying its answer's planted label), themes found vs planted (11 labels: 8 themes, ratings,
off-topic, low effort), whether each planted theme's majority theme has the planted stance,
and themes whose majority is a rating or a contentless answer (must be none).

    python benchmarks/bench_opinion_job.py --sizes 300 1000 --seeds 0 [--out benchmarks/results/opinion_job.json]
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from sklearn.metrics import adjusted_rand_score

from miner.components import Components
from miner.ingest import to_interview
from miner.eval_opinions import OpinionClusterer
from miner.opinion_job import min_theme_size, opinion_units, unit_stances, split_by_stance, theme_stances
from miner.sample import PLANTED_THEMES, RESERVED_LABELS, THEME_POLARITY, generate_sample
from miner.settings import Settings
from miner.stance import VaderStance
from miner.themes import number_clusters
from miner.units import split_units


def fit(clusterer, units, vectors) -> np.ndarray:
    """The job's cluster step, in memory."""
    found = clusterer.fit(vectors)
    return number_clusters(split_by_stance(found, [u.stance for u in units], min_theme_size(len(units))))


def run(size: int, seed: int, parts: Components, clusterer, aspect: bool) -> dict:
    samples = generate_sample(size, seed=seed)
    interviews = [to_interview(s.record, "bench", "sample.jsonl", n) for n, s in enumerate(samples, start=1)]
    planted = {}
    for interview, sample in zip(interviews, samples):
        for index, label in enumerate(sample.answer_themes):
            planted[f"{interview.interview_id}:{index}"] = label
    answers = split_units(interviews)
    started = time.perf_counter()
    units, empty = opinion_units(answers)
    texts = [VaderStance().aspect_text(u.answer) if aspect else u.answer for u in units]
    vectors = parts.embedder.embed(texts)
    stances = unit_stances([u.answer for u in units], parts.embedder.embed([u.answer for u in units]) if aspect
                           else vectors, parts.embedder)
    units = [replace(u, stance=st) for u, st in zip(units, stances)]
    labels = fit(clusterer, units, vectors)
    seconds = time.perf_counter() - started
    truth = [planted[u.answer_unit_id] for u in units]
    members = defaultdict(list)
    for label, true in zip(labels, truth):
        if label >= 0:
            members[int(label)].append(true)
    majority = {t: Counter(m).most_common(1)[0][0] for t, m in members.items()}
    stances = theme_stances(units, labels)
    wrong_stance = sorted({f"{majority[t]}:{stances[t]}" for t in majority if majority[t] in THEME_POLARITY
                           and stances[t] != ("positive" if THEME_POLARITY[majority[t]] > 0 else "negative")})
    missing = sorted(set(PLANTED_THEMES) - set(majority.values()))
    return {
        "size": size, "seed": seed, "clusterer": getattr(clusterer, "name", "?"), "aspect": aspect, "answers": len(answers), "no_opinion": len(empty), "units": len(units),
        "ari": round(adjusted_rand_score(truth, labels), 4),
        "ari_assigned": round(adjusted_rand_score([t for t, l in zip(truth, labels) if l >= 0],
                                                  [l for l in labels if l >= 0]), 4),
        "themes": len(majority), "planted": len(PLANTED_THEMES) + len(RESERVED_LABELS),
        "outliers": int((labels < 0).sum()),
        "wrong_stance": wrong_stance, "missing_planted": missing,
        "rating_or_contentless_themes": sorted(f"{t}:{majority[t]}" for t in majority
                                               if majority[t] in ("rating", "low_effort")),
        "stances": dict(Counter(stances.values())), "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--clusterer", choices=["default", "opinion", "opinion-eom"], default="default")
    parser.add_argument("--aspect", action="store_true", help="embed the units without their sentiment words")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/opinion_job.json"))
    args = parser.parse_args()
    parts = Components.from_settings(Settings())
    clusterer = {"default": parts.clusterer, "opinion": OpinionClusterer(),
                 "opinion-eom": OpinionClusterer(selection="eom")}[args.clusterer]
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            rows.append(run(size, seed, parts, clusterer, args.aspect))
            print(json.dumps(rows[-1]), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""Opinion units → embed → cluster → stance on MAMS ACSA (../shared/data/mams_acsa_*.csv).

Scored by miner.eval_opinions (themes mapped many-to-one to their most co-occurring gold
category; micro pair-F1, category-F1, polarity accuracy on found categories). Choices are made
on validation (and train), the chosen configuration and the reference rows are then run on
test in the same process. Writes benchmarks/results/opinions.json and prints the markdown
table for BENCHMARKS.md § Opinions.

    python benchmarks/bench_opinions.py [--quick]   # --quick: no train row; writes opinions_quick.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miner.cluster import ClusterParams, UmapHdbscanClusterer
from miner.embed import SentenceTransformerEmbedder
from miner.eval_opinions import OpinionClusterer, evaluate_opinions, read_opinion_csv
from miner.opinion_units import Span, split_spans
from miner.stance import CombinedStance, VaderStance

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.exists():
    DATA = Path("/work/shared/data")
OUT = Path(__file__).resolve().parent / "results" / "opinions.json"


class CachedEmbedder:
    """Each distinct text embedded once per process (the grid re-embeds the same units)."""

    def __init__(self, inner):
        self.inner, self.name, self.cache = inner, inner.name, {}

    def embed(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.cache.update(zip(missing, self.inner.embed(missing)))
        return np.array([self.cache[t] for t in texts], dtype=np.float32)


class KMeansTrueK:
    name = "kmeans-true-k"

    def __init__(self, k, seed=0):
        self.k, self.seed = k, seed

    def fit(self, vectors):
        from sklearn.cluster import KMeans
        return KMeans(self.k, n_init=10, random_state=self.seed).fit_predict(vectors)


class CappedMcs(UmapHdbscanClusterer):
    """HDBSCAN's min_cluster_size as a fraction of the units (at least 5)."""

    def __init__(self, fraction, seed=42, refine="ward"):
        self.fraction, self.seed, self.refine = fraction, seed, refine
        self.name = f"umap-hdbscan mcs={fraction:.1%}·n {refine}"

    def fit(self, vectors):
        self.params = ClusterParams(seed=self.seed, refine=self.refine,
                                    min_cluster_size=max(5, round(self.fraction * len(vectors))))
        return super().fit(vectors)


def whole(text):
    return [Span(0, len(text))]


def clauses(text):
    return split_spans(text, commas=False)


def clauses_commas(text):
    return split_spans(text, commas=True)


SPLITS = {"whole": whole, "clauses": clauses, "clauses+commas": clauses_commas}


@dataclass
class Row:
    split: str
    units: str
    clusterer: str
    stance: str
    scores: dict


def run(data_name, units, clusterer, stance, embedder, aspect=False):
    data = read_opinion_csv(DATA / f"mams_acsa_{data_name}.csv")
    scores = evaluate_opinions(data, embedder, clusterer, stance, split=SPLITS[units], aspect=aspect)
    row = Row(data_name, units + (" (aspect vectors)" if aspect else ""), clusterer.name, stance.name, scores)
    print(json.dumps(row.__dict__), flush=True)
    return row


def stance_checks() -> dict:
    """VADER thresholds on the held-out phrasings of tests/test_stance.py, and HALIE: Spearman of
    each interview's mean unit compound score with the person's own helpfulness rating."""
    import csv

    from scipy.stats import spearmanr

    from miner.opinion_units import is_no_opinion

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_stance import HELD_OUT

    out: dict = {"held_out": {}}
    vader = VaderStance()
    scores = vader.scores([t for t, _ in HELD_OUT])
    for t in (0.05, 0.2, 0.3, 0.5):
        got = [("positive" if s > t else "negative" if s < -t else "neutral") for s in scores]
        out["held_out"][str(t)] = f"{sum(g == w for g, (_, w) in zip(got, HELD_OUT))}/{len(HELD_OUT)}"
    gold = {r["id"]: float(r["helpfulness"]) for r in csv.DictReader(open(DATA / "halie_crossword_ratings.csv"))
            if r["helpfulness"]}
    means, ratings, units, no_opinion = [], [], 0, 0
    for line in open(DATA / "halie_crossword.jsonl", encoding="utf-8"):
        record = json.loads(line)
        texts = []
        for message in record["interview"]:
            if message["role"] != "user" or not isinstance(message["content"], str):
                continue
            if is_no_opinion(message["content"]):
                no_opinion += 1
                continue
            texts += [message["content"][s.start:s.end] for s in split_spans(message["content"])]
        units += len(texts)
        if texts and record.get("id") in gold:
            means.append(float(vader.scores(texts).mean()))
            ratings.append(gold[record["id"]])
    out["halie"] = {"interviews": len(means), "units": units, "no_opinion_answers": no_opinion,
                    "spearman_mean_unit_vader_vs_helpfulness": round(float(spearmanr(means, ratings)[0]), 3)}
    print(json.dumps(out), flush=True)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--stance-only", action="store_true", help="only the stance checks (seconds)")
    args = parser.parse_args(argv)
    if args.stance_only:
        (OUT.parent / "opinions_stance.json").write_text(json.dumps(stance_checks(), indent=1))
        return 0
    started = time.perf_counter()
    embedder = CachedEmbedder(SentenceTransformerEmbedder())
    vader = VaderStance(0.05)
    vader.name = "vader t=0.05"
    stances = [vader]
    for t in (0.3, 0.5):
        s = VaderStance(t)
        s.name = f"vader t={t}"
        stances.append(s)
    combined = CombinedStance(embedder, threshold=0.1, weight=0.5)
    combined.name = "vader+0.5·anchor t=0.1"
    stances.append(combined)
    rows: list[Row] = []
    # Grid on validation: units × clusterer (stance fixed), then stance on the best.
    clusterers = [UmapHdbscanClusterer(ClusterParams()), CappedMcs(0.01), CappedMcs(0.02), CappedMcs(0.01, refine="none")]
    clusterers[0].name = "umap-hdbscan default"
    for units in ("clauses", "clauses+commas"):
        for clusterer in clusterers:
            rows.append(run("validation", units, clusterer, vader, embedder))
    fits = [r for r in rows if r.scores["themes"] <= 24]
    best = max(fits, key=lambda r: r.scores["pair_f1"])
    best_clusterer = next(c for c in clusterers if c.name == best.clusterer)
    for stance in stances[1:]:
        rows.append(run("validation", best.units, best_clusterer, stance, embedder))
    best_stance = max((s for s in stances),
                      key=lambda s: max((r.scores["pair_f1"] for r in rows if r.stance == s.name
                                         and r.units == best.units and r.clusterer == best.clusterer), default=-1))
    # Units clustered by their text without sentiment words (stance.aspect_text), HDBSCAN "leaf".
    leaf = OpinionClusterer(42)
    leaf.name = "opinion clusterer (mcs=1.5%·n leaf none)"
    aspect_rows = [run("validation", "clauses+commas", leaf, s, embedder, aspect=True) for s in (vader, stances[2])]
    rows += aspect_rows
    best_aspect = max(aspect_rows, key=lambda r: r.scores["pair_f1"])
    if best_aspect.scores["pair_f1"] > max(r.scores["pair_f1"] for r in rows if r not in aspect_rows):
        chosen_stance = next(s for s in stances if s.name == best_aspect.stance)
        chosen = ("clauses+commas", leaf, chosen_stance, True)
    else:
        chosen = (best.units, best_clusterer, best_stance, False)
    if not args.quick:
        rows.append(run("train", *chosen[:3], embedder, aspect=chosen[3]))
    for seed in (42, 1, 2):
        c = chosen[1]
        if isinstance(c, OpinionClusterer):
            c = OpinionClusterer(seed)
            c.name = f"opinion clusterer (mcs=1.5%·n leaf none)"
        elif hasattr(c, "fraction"):
            c = CappedMcs(c.fraction, seed=seed, refine=c.refine)
        else:
            c = UmapHdbscanClusterer(ClusterParams(seed=seed))
            c.name = "umap-hdbscan default"
        c.name += f" seed={seed}"
        rows.append(run("test", chosen[0], c, chosen[2], embedder, aspect=chosen[3]))
    # The product default (VaderStance(), threshold 0.05, chosen on held-out phrasings and HALIE)
    # on test with the chosen units and clusterer, when MAMS validation preferred another stance.
    if chosen[2] is not vader:
        rows.append(run("test", chosen[0], chosen[1], vader, embedder, aspect=chosen[3]))
    # Reference rows, same run: whole sentences and clause units with k-means told the true k + VADER.
    rows.append(run("test", "whole", KMeansTrueK(8), vader, embedder))
    rows.append(run("test", "clauses", KMeansTrueK(8), vader, embedder))
    rows.append(run("test", "clauses+commas", KMeansTrueK(8), vader, embedder))
    out = OUT.with_name("opinions_quick.json") if args.quick else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"chosen": {"units": chosen[0], "clusterer": chosen[1].name, "stance": chosen[2].name,
                                          "aspect_vectors": chosen[3]},
                               "rows": [r.__dict__ for r in rows],
                               "seconds": round(time.perf_counter() - started, 1)}, indent=1))
    print("| split | units | clusterer | stance | pair-F1 | category-F1 | polarity acc | units | themes | s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        s = r.scores
        print(f"| {r.split} | {r.units} | {r.clusterer} | {r.stance} | {s['pair_f1']:.3f} | {s['category_f1']:.3f} | "
              f"{s['polarity_accuracy']:.3f} | {s['units']} | {s['themes']} | {s['seconds']} |")


if __name__ == "__main__":
    sys.exit(main())

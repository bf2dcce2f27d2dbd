"""Opinion units → embed → cluster → stance on MAMS ACSA (../shared/data/mams_acsa_*.csv).

Scored by miner.eval_opinions (themes mapped many-to-one to their most co-occurring gold
category; micro pair-F1, category-F1, polarity accuracy on found categories). The product path
(`miner eval opinions`: aspect-level units from opinion_units.split_aspect_spans, aspect
vectors, eval_opinions.OpinionClusterer, stance.default_stance, a text's category scored by its units' mean stance score) and the
estimators it replaced are run on validation with three seeds, then on test with three seeds,
beside reference rows measured in the same run. Writes benchmarks/results/opinions.json and
prints the markdown table for BENCHMARKS.md § Opinions.

    python benchmarks/bench_opinions.py                # MAMS validation + test (minutes)
    python benchmarks/bench_opinions.py --stance-only  # stance estimators on the interview side
    python benchmarks/bench_opinions.py --fitted       # the stance fitted on MAMS train (--stance-train)
    python benchmarks/bench_opinions.py --fine-tuned [--seeds 42]  # the encoder fine-tuned on it (slow; not adopted)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miner.embed import SentenceTransformerEmbedder
from miner.eval_opinions import OpinionClusterer, evaluate_opinions, fit_stance, read_opinion_csv
from miner.opinion_units import Span, split_aspect_spans, split_spans
from miner.stance import AnchorStance, FittedStance, OpinionStance, VaderStance, stance_of_score
from fine_tuned_stance import FineTunedEnsemble  # benchmarks/ is the script's folder
from self_trained_stance import SelfTrainedStance

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


def whole(text):
    return [Span(0, len(text))]


def clauses(text):
    return split_spans(text, commas=False)


def clauses_commas(text):
    return split_spans(text, commas=True)


SPLITS = {"whole": whole, "clauses": clauses, "clauses+commas": clauses_commas, "aspects": split_aspect_spans}
PRODUCT_UNITS = "aspects"  # eval opinions' units (eval_opinions.evaluate_opinions' default split)


@dataclass
class Row:
    split: str
    units: str
    clusterer: str
    stance: str
    scores: dict


class CachedClusterer:
    """The opinion clusterer of one seed, each distinct set of vectors clustered once (the rows
    differ in stance only, and the clustering does not read the stance)."""

    def __init__(self, seed):
        self.inner, self.cache = OpinionClusterer(seed), {}
        self.name = f"opinion clusterer (mcs=1.5%·n leaf none) seed={seed}"

    def fit(self, vectors):
        key = hash(np.ascontiguousarray(vectors).tobytes())
        if key not in self.cache:
            self.cache[key] = self.inner.fit(vectors)
        return self.cache[key]


class Estimator:
    """A stance estimator as eval opinions sees it: units clustered on VADER's aspect text for
    every estimator (so rows differ in stance only); with `majority` the category polarity is
    the units' majority stance (the scoring before the mean-score rule), else their mean score."""

    def __init__(self, inner, threshold, name, majority=False):
        self.inner, self.name, self.majority, self._threshold = inner, name, majority, threshold
        self.vader = inner if isinstance(inner, VaderStance) else VaderStance()
        self.aspect_text = self.vader.aspect_text
        if not majority:  # eval_opinions scores a text's category by the mean when these are there
            self.threshold, self.scores = threshold, self.raw

    def raw(self, texts, vectors):
        return self.inner.scores(texts, vectors)

    def stances(self, texts, vectors=None):
        return [stance_of_score(s, self._threshold) for s in self.raw(texts, vectors)]


class AlwaysNeutral:
    """Every unit neutral; units clustered on VADER's aspect text like the estimators' rows."""

    name = "always neutral"

    def __init__(self):
        self.aspect_text = VaderStance().aspect_text

    def stances(self, texts, vectors=None):
        return ["neutral"] * len(texts)


def run(data_name, units, clusterer, stance, embedder, aspect=False):
    data = read_opinion_csv(DATA / f"mams_acsa_{data_name}.csv")
    if hasattr(stance, "reading"):  # FineTunedStance reads each unit in its sentence
        stance.reading(data)
    scores = evaluate_opinions(data, embedder, clusterer, stance, split=SPLITS[units], aspect=aspect)
    row = Row(data_name, units + (" (aspect vectors)" if aspect else ""), clusterer.name,
              stance.name + ("" if units == PRODUCT_UNITS or not aspect else f"; {units} units"), scores)
    print(json.dumps(row.__dict__), flush=True)
    return row


def estimators(embedder):
    """The product's estimator and those it replaced, as the benchmark runs them."""
    opinion = OpinionStance(embedder)
    trained = SelfTrainedStance(embedder)
    return [Estimator(trained, trained.threshold, f"self-trained t={trained.threshold} (mean score)"),
            Estimator(trained, trained.threshold, f"self-trained t={trained.threshold} (majority)", majority=True),
            Estimator(opinion, opinion.threshold, f"opinion t={opinion.threshold} (mean score)"),
            Estimator(opinion, opinion.threshold, f"opinion t={opinion.threshold} (majority)", majority=True),
            Estimator(VaderStance(), 0.05, "vader t=0.05 (majority; eval opinions before)", majority=True),
            Estimator(AnchorStance(embedder), 0.1, "anchor t=0.1 (majority; the job before)", majority=True)]


def stance_checks(embedder=None) -> dict:
    """The stance estimators on the interview side: the held-out phrasings of tests/test_stance.py
    (written for that test; never used to choose), the synthetic sample study's units (300
    interviews, seed 0; sign right among the units given a side, and the share given one, against
    the polarity of the planted theme of the unit's answer — a two-claim answer's second claim
    counts with the first's polarity, so 1.0 is out of reach), and HALIE: Spearman of each
    interview's mean unit score with the person's own helpfulness rating."""
    import csv

    from scipy.stats import spearmanr

    from miner.ingest import to_interview
    from miner.opinion_job import opinion_units
    from miner.opinion_units import is_no_opinion
    from miner.sample import THEME_POLARITY, generate_sample
    from miner.units import split_units

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_stance import HELD_OUT

    embedder = embedder or CachedEmbedder(SentenceTransformerEmbedder())
    samples = generate_sample(300, seed=0)
    interviews = [to_interview(s.record, "g", "sample.jsonl", n) for n, s in enumerate(samples, start=1)]
    planted = {f"{i.interview_id}:{k}": label for i, s in zip(interviews, samples)
               for k, label in enumerate(s.answer_themes)}
    units, _ = opinion_units(split_units(interviews))
    polar = [(u.answer, THEME_POLARITY[planted[u.answer_unit_id]]) for u in units
             if planted[u.answer_unit_id] in THEME_POLARITY]
    gold = {r["id"]: float(r["helpfulness"]) for r in csv.DictReader(open(DATA / "halie_crossword_ratings.csv"))
            if r["helpfulness"]}
    halie: dict[str, list[str]] = {}
    no_opinion = 0
    for line in open(DATA / "halie_crossword.jsonl", encoding="utf-8"):
        record = json.loads(line)
        for message in record["interview"]:
            if message["role"] != "user" or not isinstance(message["content"], str):
                continue
            if is_no_opinion(message["content"]):
                no_opinion += 1
                continue
            halie.setdefault(record.get("id"), []).extend(
                message["content"][s.start:s.end] for s in split_spans(message["content"]))
    out: dict = {"sample_polar_units": len(polar), "halie_units": sum(map(len, halie.values())),
                 "halie_no_opinion_answers": no_opinion, "estimators": {}}
    held_texts = [t for t, _ in HELD_OUT]
    for estimator in estimators(embedder):
        if estimator.name.endswith("(majority)"):
            continue  # same unit stances as the mean-score row
        got = estimator.stances(held_texts, embedder.embed(held_texts))
        sign_errors = sum({g, w} == {"positive", "negative"} for g, (_, w) in zip(got, HELD_OUT))
        texts = [t for t, _ in polar]
        stances = estimator.stances(texts, embedder.embed(texts))
        given = [(s, p) for s, p in zip(stances, (p for _, p in polar)) if s != "neutral"]
        right = sum((s == "positive") == (p > 0) for s, p in given)
        means, ratings = [], []
        # One call on the whole study (a self-trained estimator fits on all its units), then per interview.
        owners = [(i, t) for i, texts in halie.items() if i in gold for t in texts]
        every = estimator.raw([t for _, t in owners], embedder.embed([t for _, t in owners]))
        for interview_id in dict.fromkeys(i for i, _ in owners):
            means.append(float(np.mean([x for (i, _), x in zip(owners, every) if i == interview_id])))
            ratings.append(gold[interview_id])
        out["estimators"][estimator.name.split(" (")[0]] = {
            "held_out_right": f"{sum(g == w for g, (_, w) in zip(got, HELD_OUT))}/{len(HELD_OUT)}",
            "held_out_sign_errors": sign_errors,
            "sample_sign_right": round(right / len(given), 3), "sample_given_a_side": round(len(given) / len(polar), 3),
            "halie_interviews": len(means),
            "halie_spearman_mean_unit_score_vs_helpfulness": round(float(spearmanr(means, ratings)[0]), 3)}
        print(json.dumps({estimator.name: out["estimators"][estimator.name.split(" (")[0]]}), flush=True)
    return out


SEEDS = (42, 1, 2)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--stance-only", action="store_true", help="only the interview-side stance checks")
    parser.add_argument("--fitted", action="store_true", help="only the stance fitted on MAMS train (--stance-train)")
    parser.add_argument("--fine-tuned", action="store_true",
                        help="only the encoder fine-tuned on MAMS train (benchmarks/fine_tuned_stance.py; ~40 min a seed on 2 cores)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS), help="with --fine-tuned: these seeds")
    args = parser.parse_args(argv)
    embedder = CachedEmbedder(SentenceTransformerEmbedder())
    if args.stance_only:
        (OUT.parent / "opinions_stance.json").write_text(json.dumps(stance_checks(embedder), indent=1))
        return 0
    started = time.perf_counter()
    clusterers = {seed: CachedClusterer(seed) for seed in SEEDS}
    rows: list[Row] = []
    if args.fitted:
        # `miner eval opinions FILE --stance-train mams_acsa_train.csv --seed S`: the head fitted on the
        # train split's units (clustered with the same seed), chosen on validation, then test once.
        train = read_opinion_csv(DATA / "mams_acsa_train.csv")
        for seed in SEEDS:
            stance = fit_stance(train, embedder, clusterers[seed], FittedStance())
            stance.name = f"fitted on train t={stance.threshold} C={stance.c} (mean score; --stance-train)"
            for split in ("validation", "test"):
                rows.append(run(split, PRODUCT_UNITS, clusterers[seed], stance, embedder, aspect=True))
        rows.sort(key=lambda r: r.split != "validation")
        out = OUT.parent / "opinions_fitted.json"
    elif args.fine_tuned:
        # The same labels (fit_stance); LR + the encoder fine-tuned on the unit, and on the unit in its text.
        train = read_opinion_csv(DATA / "mams_acsa_train.csv")
        fine_tuning = {}
        for seed in args.seeds:
            stance = FineTunedEnsemble().reading(train)
            stance = fit_stance(train, embedder, clusterers.setdefault(seed, CachedClusterer(seed)), stance)
            stance.name = f"fine-tuned ensemble t={stance.threshold} (mean score; benchmarks/fine_tuned_stance.py)"
            fine_tuning[seed] = round(stance.train_seconds, 1)
            print(json.dumps({"seed": seed, "fine_tuning_seconds": fine_tuning[seed]}), flush=True)
            for split in ("validation", "test"):
                rows.append(run(split, PRODUCT_UNITS, clusterers[seed], stance, embedder, aspect=True))
        rows.sort(key=lambda r: r.split != "validation")
        out = OUT.parent / "opinions_fine_tuned.json"
    else:
        out = OUT
        rows = main_rows(embedder, clusterers)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = {"fine_tuning_seconds": fine_tuning} if args.fine_tuned else {}
    out.write_text(json.dumps({"rows": [r.__dict__ for r in rows], "seconds": round(time.perf_counter() - started, 1),
                               **extra}, indent=1))
    print_table(rows)


def main_rows(embedder, clusterers) -> list[Row]:
    rows: list[Row] = []
    for split in ("validation", "test"):
        for estimator in estimators(embedder):
            for seed in SEEDS:
                rows.append(run(split, PRODUCT_UNITS, clusterers[seed], estimator, embedder, aspect=True))
        # eval opinions before the aspect-level units: clause units cut at commas, OpinionStance.
        for seed in SEEDS:
            rows.append(run(split, "clauses+commas", clusterers[seed], estimators(embedder)[2], embedder, aspect=True))
        if split == "validation":
            # The self-trained estimator's weight and threshold around the chosen 1.0 / 0.4 (validation only).
            for w, t in ((0.5, 0.3), (0.75, 0.4), (1.0, 0.3), (1.0, 0.5)):
                est = Estimator(SelfTrainedStance(embedder, threshold=t, weight=w), t, f"self-trained w={w} t={t} (mean score)")
                for seed in SEEDS:
                    rows.append(run(split, PRODUCT_UNITS, clusterers[seed], est, embedder, aspect=True))
            # OpinionStance's threshold on MAMS validation (chosen on the interview side).
            for t in (0.2, 0.4, 0.5):
                est = Estimator(OpinionStance(embedder, threshold=t), t, f"opinion t={t} (mean score)")
                rows.append(run(split, PRODUCT_UNITS, clusterers[42], est, embedder, aspect=True))
    # Reference rows, same run: always neutral on the product's themes; k-means told the true k + VADER.
    for seed in SEEDS:
        rows.append(run("test", PRODUCT_UNITS, clusterers[seed], AlwaysNeutral(), embedder, aspect=True))
    vader = Estimator(VaderStance(), 0.05, "vader t=0.05 (majority)", majority=True)
    for units in ("whole", "clauses", "clauses+commas", "aspects"):
        rows.append(run("test", units, KMeansTrueK(8), vader, embedder))
    return rows


def print_table(rows: list[Row]) -> None:
    print("| split | stance (category polarity) | seeds | pair-F1 | category-F1 | polarity acc | units | themes |")
    print("|---|---|---|---|---|---|---|---|")
    groups: dict[tuple, list[Row]] = {}
    for r in rows:
        groups.setdefault((r.split, r.units, r.clusterer.split(" seed=")[0], r.stance), []).append(r)
    for (split, units, clusterer, stance), members in groups.items():
        cells = []
        for key in ("pair_f1", "category_f1", "polarity_accuracy"):
            values = [m.scores[key] for m in members]
            cells.append(f"{np.mean(values):.3f} ({min(values):.3f}–{max(values):.3f})" if len(values) > 1
                         else f"{values[0]:.3f}")
        themes = sorted({m.scores["themes"] for m in members})
        what = stance if clusterer.startswith("opinion") else f"{stance}; {units}, {clusterer}"
        theme_range = f"{themes[0]}–{themes[-1]}" if len(themes) > 1 else str(themes[0])
        print(f"| {split} | {what} | {len(members)} | {' | '.join(cells)} | {members[0].scores['units']} | "
              f"{theme_range} |")


if __name__ == "__main__":
    sys.exit(main())

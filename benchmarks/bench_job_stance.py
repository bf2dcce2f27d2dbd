"""Sample studies: one fit of the job's theme clusterer per (size, seed), the job's stance split under
several unit stance estimators: ARI against the planted themes, themes, planted themes whose majority
theme has the wrong stance, and on the planted polar units the sign right among those given a side and
the share given a side. (The stance does not move the fit, only the split.)

    python benchmarks/bench_job_stance.py 300:0,300:1,300:2,1000:0,1000:1,1000:2
        [--cache /tmp/v.npz] [--out benchmarks/results/job_stance_samples.json]
"""
import argparse
import sys, json, time
from collections import Counter, defaultdict
from dataclasses import replace
from pathlib import Path
import numpy as np
from sklearn.metrics import adjusted_rand_score
from bench_opinion_job import VectorCache, Float32Embedder
from miner.components import Components, theme_clusterer_from_settings
from miner.ingest import to_interview
from miner.opinion_job import min_theme_size, opinion_units, split_by_stance, theme_stances
from miner.sample import PLANTED_THEMES, THEME_POLARITY, generate_sample
from miner.settings import Settings
from miner.stance import AnchorStance, VaderStance, OpinionStance, stance_of_score
from miner.themes import number_clusters
from miner.units import split_units

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", help="SIZE:SEED,SIZE:SEED,...")
parser.add_argument("--cache", type=Path, help="an .npz of text vectors kept across runs (model in float32)")
parser.add_argument("--out", type=Path, default=Path("benchmarks/results/job_stance_samples.json"))
args = parser.parse_args()
settings = Settings(); parts = Components.from_settings(settings)
cache = VectorCache(Float32Embedder(parts.embedder), args.cache)
clusterer = theme_clusterer_from_settings(settings)
rows = json.loads(args.out.read_text()) if args.out.exists() else []
for spec in args.runs.split(","):
    size, seed = map(int, spec.split(":"))
    samples = generate_sample(size, seed=seed)
    interviews = [to_interview(s.record, "bench", "sample.jsonl", n) for n, s in enumerate(samples, start=1)]
    planted = {f"{i.interview_id}:{k}": lab for i, s in zip(interviews, samples) for k, lab in enumerate(s.answer_themes)}
    units, empty = opinion_units(split_units(interviews))
    texts = [u.answer for u in units]
    t0 = time.time(); vectors = cache.embed(texts); t1 = time.time()
    found = clusterer.fit(vectors); t2 = time.time()
    anchor = AnchorStance(parts.embedder).scores(texts, vectors); vader = VaderStance().scores(texts)
    opin = OpinionStance(parts.embedder).scores(texts, vectors)
    variants = {"anchor 0.1": [stance_of_score(a, 0.1) for a in anchor],
                "anchor 0.2": [stance_of_score(a, 0.2) for a in anchor],
                "vader+anchor 0.1": [stance_of_score(v + a, 0.1) for v, a in zip(vader, anchor)],
                "vader+anchor 0.2": [stance_of_score(v + a, 0.2) for v, a in zip(vader, anchor)],
                "vader+0.5anchor 0.1": [stance_of_score(v + 0.5 * a, 0.1) for v, a in zip(vader, anchor)],
                "opinion 0.3": [stance_of_score(o, 0.3) for o in opin],
                "opinion 0.2": [stance_of_score(o, 0.2) for o in opin]}
    truth = [planted[u.answer_unit_id] for u in units]
    for name, st in variants.items():
        labels = number_clusters(split_by_stance(found, st, min_theme_size(len(units))))
        su = [replace(u, stance=s) for u, s in zip(units, st)]
        members = defaultdict(list)
        for l, t in zip(labels, truth):
            if l >= 0: members[int(l)].append(t)
        majority = {t: Counter(m).most_common(1)[0][0] for t, m in members.items()}
        ts = theme_stances(su, labels)
        wrong = sorted({f"{majority[t]}:{ts[t]}" for t in majority if majority[t] in THEME_POLARITY
                        and ts[t] != ("positive" if THEME_POLARITY[majority[t]] > 0 else "negative")})
        missing = sorted(set(PLANTED_THEMES) - set(majority.values()))
        # unit-level sign accuracy on planted polar units
        polar = [(s, THEME_POLARITY[t]) for s, t in zip(st, truth) if t in THEME_POLARITY]
        sided = [(s, p) for s, p in polar if s in ("positive", "negative")]
        right = sum((s == "positive") == (p > 0) for s, p in sided)
        row = dict(size=size, seed=seed, stance=name, units=len(units), themes=len(majority),
                   ari=round(adjusted_rand_score(truth, labels), 4), wrong_stance=wrong, missing=missing,
                   sign_right=round(right / max(1, len(sided)), 3), sided=round(len(sided) / max(1, len(polar)), 3),
                   embed_s=round(t1 - t0), fit_s=round(t2 - t1))
        rows.append(row); print(json.dumps(row), flush=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")

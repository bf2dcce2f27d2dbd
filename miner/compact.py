"""Embeddings are stored as float16 (half the bytes of float32; measured in BENCHMARKS.md `## Scale`).

Every vector a job uses has float16 precision, whether it was just embedded or read back from the
cache, so the themes do not depend on which answers happened to be cached (rounding is idempotent).
"""

from __future__ import annotations

import numpy as np

from miner.protocols import Embedder

STORED = np.dtype("<f2")


def to_stored(vectors: np.ndarray) -> np.ndarray:
    """float32 vectors at the precision they are stored with."""
    return np.asarray(vectors, dtype=np.float32).astype(STORED).astype(np.float32)


class StoredPrecision:
    """An Embedder whose vectors are rounded as the cache stores them; same name as the one it wraps."""

    def __init__(self, inner: Embedder):
        self.inner = inner
        self.name = inner.name

    def embed(self, texts: list[str]) -> np.ndarray:
        return to_stored(self.inner.embed(texts))


def stored_precision(embedder: Embedder) -> Embedder:
    return embedder if isinstance(embedder, StoredPrecision) else StoredPrecision(embedder)

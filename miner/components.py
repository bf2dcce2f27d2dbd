"""Contracts of the pluggable components, and the one place that maps settings to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from miner.settings import Settings


class NotInstalledError(ImportError):
    """An optional dependency is missing; the message says what to pip install."""


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors; `name` is stored with every vector."""

    name: str

    def embed(self, texts: list[str]) -> np.ndarray: ...


@runtime_checkable
class Clusterer(Protocol):
    """Assigns each vector a cluster label (-1 = outlier)."""

    name: str

    def fit(self, vectors: np.ndarray) -> np.ndarray: ...


def embedder_from_settings(settings: Settings) -> Embedder:
    from miner.embed import SentenceTransformerEmbedder

    kinds = {"sentence-transformers": SentenceTransformerEmbedder}
    if settings.embedder not in kinds:
        raise ValueError(f"unknown MINER_EMBEDDER {settings.embedder!r}; choose from {sorted(kinds)}")
    return kinds[settings.embedder](settings.embedding_model, batch_size=settings.embedding_batch_size)


def clusterer_from_settings(settings: Settings) -> Clusterer:
    from miner.cluster import ClusterParams, UmapHdbscanClusterer

    kinds = {"umap-hdbscan": UmapHdbscanClusterer}
    if settings.clusterer not in kinds:
        raise ValueError(f"unknown MINER_CLUSTERER {settings.clusterer!r}; choose from {sorted(kinds)}")
    return kinds[settings.clusterer](ClusterParams(seed=settings.seed))

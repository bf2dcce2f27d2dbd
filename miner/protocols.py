"""Contracts of the pluggable components. Imports nothing from miner, so any module may use them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np


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


@runtime_checkable
class Labeller(Protocol):
    """Labels clusters from their documents without a network (miner.label.ThemeLabel per cluster)."""

    name: str

    def label_all(self, documents_per_cluster: Sequence[Sequence[str]]) -> list[Any]: ...


class ChatCompletions(Protocol):
    def create(self, **request: Any) -> Any: ...


class Chat(Protocol):
    completions: ChatCompletions


@runtime_checkable
class LLMClient(Protocol):
    """The slice of `openai.OpenAI` the LLM layer calls: `client.chat.completions.create(...)`."""

    chat: Chat

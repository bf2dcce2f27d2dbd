"""Contracts of the pluggable components, and the one place that maps settings to them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from miner.llm import LLMOptions
    from miner.llm_label import LabelOptions
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


class ChatCompletions(Protocol):
    def create(self, **request: Any) -> Any: ...


class Chat(Protocol):
    completions: ChatCompletions


@runtime_checkable
class LLMClient(Protocol):
    """The slice of `openai.OpenAI` the LLM layer calls: `client.chat.completions.create(...)`."""

    chat: Chat


def llm_client_from_settings(settings: Settings) -> LLMClient | None:
    """An `openai.OpenAI` client for MINER_LLM_BASE_URL, or None when no endpoint is configured.

    The client's own retries are off: miner/llm.py retries with backoff and records each attempt.
    """
    if not settings.llm_base_url:
        return None
    from miner.llm import LLMConfigError

    if not settings.llm_model:
        raise LLMConfigError("MINER_LLM_BASE_URL is set but MINER_LLM_MODEL is not; name the model to call")
    try:
        import openai
    except ImportError as exc:
        raise NotInstalledError("pip install openai") from exc
    # Local servers (llama.cpp, vLLM, Ollama) accept any key; the client insists on one.
    return openai.OpenAI(base_url=settings.llm_base_url, api_key=settings.llm_api_key or "not-needed",
                         timeout=settings.llm_timeout, max_retries=0)


def llm_options_from_settings(settings: Settings) -> LLMOptions:
    """miner.llm.LLMOptions from MINER_LLM_* settings."""
    from miner.llm import LLMOptions

    return LLMOptions(
        model=settings.llm_model or "", max_concurrency=settings.llm_max_concurrency,
        max_retries=settings.llm_max_retries, backoff_initial=settings.llm_backoff_initial,
        backoff_max=settings.llm_backoff_max, retry_after_max=settings.llm_retry_after_max,
        repair_attempts=settings.llm_repair_attempts, temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens, token_budget=settings.llm_token_budget,
        failure_threshold=settings.llm_failure_threshold,
    )


def label_options_from_settings(settings: Settings) -> LabelOptions:
    """miner.llm_label.LabelOptions from MINER_LLM_* settings."""
    from miner.llm_label import LabelOptions

    return LabelOptions(scrub=settings.llm_scrub, min_model_answers=settings.llm_min_model_answers)

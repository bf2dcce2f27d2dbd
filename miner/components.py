"""The one place that maps settings to components: `Components.from_settings(settings)`.

The contracts themselves are in miner.protocols; implementations are imported only when chosen,
so naming a component never loads a library another one needs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from miner.protocols import (Chat, ChatCompletions, Clusterer, Embedder, Labeller, LLMClient,  # noqa: F401
                             NotInstalledError)

if TYPE_CHECKING:
    from miner.assign import SampleParams
    from miner.llm import LLMOptions
    from miner.llm_label import LabelOptions
    from miner.nightly import NightlyParams
    from miner.settings import Settings
    from miner.understand import UnderstandOptions

DEFAULT_EMBED_CHUNK = 2000


@dataclass(frozen=True)
class Components:
    """What a job needs besides the database. None options mean the defaults of their module."""

    embedder: Embedder
    clusterer: Clusterer
    labeller: Labeller
    # What the analysis job clusters its opinion units with; None: `clusterer` (a test's override).
    theme_clusterer: Clusterer | None = None
    llm_client: LLMClient | None = None  # None = extractive labels and offline ratings only
    llm_options: LLMOptions | None = None
    label_options: LabelOptions | None = None
    understand_options: UnderstandOptions | None = None
    nightly: NightlyParams | None = None
    embed_chunk: int = DEFAULT_EMBED_CHUNK
    sample: SampleParams | None = None  # None = miner.assign's defaults (fit on a sample above 50k units)

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Components:
        """Every component named by MINER_* settings; `overrides` replace some (tests: a small embedder)."""
        from miner.label import ExtractiveLabeller
        from miner.understand import UnderstandOptions

        parts = cls(
            embedder=embedder_from_settings(settings) if "embedder" not in overrides else overrides["embedder"],
            clusterer=clusterer_from_settings(settings),
            theme_clusterer=None if "clusterer" in overrides else theme_clusterer_from_settings(settings),
            labeller=ExtractiveLabeller(),
            llm_client=llm_client_from_settings(settings) if "llm_client" not in overrides else None,
            llm_options=llm_options_from_settings(settings),
            label_options=label_options_from_settings(settings),
            understand_options=UnderstandOptions(llm_scrub=settings.llm_scrub),
            embed_chunk=settings.embed_chunk,
            sample=sample_params_from_settings(settings),
        )
        return replace(parts, **overrides)


class UnknownComponentError(ValueError):
    """A MINER_* setting names an embedder or clusterer kind miner does not have."""


def embedder_from_settings(settings: Settings) -> Embedder:
    from miner.embed import SentenceTransformerEmbedder

    kinds = {"sentence-transformers": SentenceTransformerEmbedder}
    if settings.embedder not in kinds:
        raise UnknownComponentError(f"unknown MINER_EMBEDDER {settings.embedder!r}; choose from {sorted(kinds)}")
    return kinds[settings.embedder](settings.embedding_model, batch_size=settings.embedding_batch_size)


def clusterer_from_settings(settings: Settings) -> Clusterer:
    from miner.cluster import ClusterParams, UmapHdbscanClusterer

    kinds = {"umap-hdbscan": UmapHdbscanClusterer}
    if settings.clusterer not in kinds:
        raise UnknownComponentError(f"unknown MINER_CLUSTERER {settings.clusterer!r}; choose from {sorted(kinds)}")
    return kinds[settings.clusterer](ClusterParams(seed=settings.seed))


def sample_params_from_settings(settings: Settings) -> SampleParams:
    from miner.assign import SampleParams

    return SampleParams(threshold=settings.cluster_sample_threshold, size=settings.cluster_sample_size,
                        seed=settings.seed)


# HDBSCAN's cluster selection for the job's themes: "eom" (ARI 0.86 vs "leaf" 0.82 on the 300-interview
# sample; BENCHMARKS.md § Opinions).
THEME_SELECTION = "eom"


def theme_clusterer_from_settings(settings: Settings) -> Clusterer:
    """The job's clusterer of opinion units (MINER_THEME_CLUSTERER): "umap-hdbscan-opinions" (HDBSCAN's
    smallest theme a fixed share of the units, so the number of themes does not grow with the study;
    BENCHMARKS.md § Opinions) or MINER_CLUSTERER's kind."""
    from miner.eval_opinions import OpinionClusterer

    if settings.theme_clusterer == "umap-hdbscan-opinions":
        return OpinionClusterer(seed=settings.seed, selection=THEME_SELECTION)
    try:
        return clusterer_from_settings(settings.model_copy(update={"clusterer": settings.theme_clusterer}))
    except UnknownComponentError:
        raise UnknownComponentError(f"unknown MINER_THEME_CLUSTERER {settings.theme_clusterer!r}; choose "
                                    "umap-hdbscan-opinions or a MINER_CLUSTERER kind") from None


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

"""Typed records that flow between stages. Ids are fields, never list positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Interview:
    """One validated interview log, as stored."""

    interview_id: str
    study: str
    session_model: str
    interview_model: str
    record: dict[str, Any]
    source_file: str
    source_position: int
    external_id: str | None = None


@dataclass(frozen=True)
class Rejected:
    """A record that failed validation, bound for the quarantine table."""

    source_file: str
    source_position: int
    error: str
    raw: str


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest did."""

    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    rejected: tuple[Rejected, ...] = ()

    def as_dict(self) -> dict[str, int]:
        return {"stored": self.stored, "duplicates": self.duplicates, "quarantined": self.quarantined}


@dataclass(frozen=True)
class Unit:
    """One answer unit: an interviewer question and the user's answer to it."""

    unit_id: str
    interview_id: str
    study: str
    session_model: str
    answer_index: int
    question: str
    answer: str
    answer_hash: str


@dataclass(frozen=True)
class Theme:
    """A labelled cluster of answers within one job."""

    theme_id: int
    label: str
    keywords: tuple[str, ...]
    labeller: str
    answers: int
    interviews: int
    quote_unit_ids: tuple[str, ...] = ()
    summary: str | None = None


@dataclass(frozen=True)
class ThemeModelStat:
    """How one theme shows up in one session model's answers."""

    theme_id: int
    session_model: str
    answers: int
    interviews: int
    share: float


@dataclass(frozen=True)
class Job:
    """An analysis job's row."""

    job_id: str
    study: str
    kind: str
    status: str
    stage: str | None
    progress: float
    created_at: Any = None
    finished_at: Any = None
    error: str | None = None
    counts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ThemeOpinion:
    """What the LLM said about a theme besides its label; `fallback` says why it did not, when not."""

    theme_id: int
    polarity: str | None
    labeller: str
    fallback: str | None = None


@dataclass(frozen=True)
class ThemeModelSentence:
    """One sentence on how a theme shows up for one session model, citing answers by unit id."""

    theme_id: int
    session_model: str
    sentence: str
    unit_ids: tuple[str, ...]
    labeller: str


@dataclass(frozen=True)
class LLMCall:
    """One row of the LLM ledger: a request answered by the endpoint or the cache, or declined."""

    purpose: str
    model: str
    cache_key: str
    cache_hit: bool
    attempts: int
    outcome: str  # ok | invalid | failed | budget | unavailable
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    theme_id: int | None = None
    repair: bool = False
    error: str | None = None


@dataclass(frozen=True)
class CachedReply:
    """A chat reply kept in the LLM response cache."""

    content: str
    prompt_tokens: int
    completion_tokens: int

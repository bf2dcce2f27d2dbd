"""Typed records that flow between stages. Ids are fields, never list positions."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Message:
    """One turn of a chat or an interview, its content as plain text."""

    role: str  # user | assistant (or whatever else the log says)
    text: str


@dataclass(frozen=True)
class Interview:
    """One validated interview log, parsed once at ingest (miner.ingest.interview_from_record).

    Stages read the typed fields; `record` is the input as given, kept only to be stored."""

    interview_id: str
    study: str
    session_model: str
    interview_model: str
    record: dict[str, Any]
    source_file: str
    source_position: int
    external_id: str | None = None
    session: tuple[Message, ...] = ()    # the chat with the session model (may be empty)
    interview: tuple[Message, ...] = ()  # interviewer questions (assistant) and the user's answers (user)
    session_start: datetime | None = None
    session_end: datetime | None = None
    interview_start: datetime | None = None
    interview_end: datetime | None = None


def message_text(content: str | list[dict[str, Any]]) -> str:
    """Message content as plain text; list content is a sequence of {text} parts."""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content)


def interview_from_record(record: dict[str, Any], *, interview_id: str, study: str, source_file: str,
                          source_position: int, external_id: str | None, **_: Any) -> Interview:
    """The typed Interview of a validated record (or of a stored one): messages as (role, text),
    timestamps as datetimes (None when absent or unreadable). The one reader of the record's keys."""
    def messages(key: str) -> tuple[Message, ...]:
        return tuple(Message(m["role"], message_text(m["content"])) for m in record.get(key) or ())

    return Interview(
        interview_id=interview_id, study=study, session_model=record["sessionModel"],
        interview_model=record["interviewModel"], record=record, source_file=source_file,
        source_position=source_position, external_id=external_id,
        session=messages("session"), interview=messages("interview"),
        session_start=_timestamp(record.get("sessionStart")), session_end=_timestamp(record.get("sessionEnd")),
        interview_start=_timestamp(record.get("interviewStart")), interview_end=_timestamp(record.get("interviewEnd")),
    )


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


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
    # Opinion units (miner.opinion_units): a span of one answer, which they name; None for answer units.
    answer_unit_id: str | None = None
    span_start: int | None = None
    span_end: int | None = None
    full_answer: str | None = None
    stance: str | None = None  # positive | negative | neutral (miner.stance, or the LLM's)
    source: str | None = None  # opinion units: "split" (miner.opinion_job) or "llm" (miner.llm_units)


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
    stance: str | None = None  # positive | negative | mixed | neutral (miner.stance.theme_stance)
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
class JobPlan:
    """What a job's first step fixes for the others, and (once clustered) the units its themes were fit on."""

    embed_chunks: int | None
    embed_chunk_size: int | None
    previous_job_id: str | None  # the published job whose theme ids this one carries on
    base_units: int | None = None


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


# Interview understanding: question dimensions, ratings, quality verdicts, per-model statistics.


@dataclass(frozen=True)
class UnitInsight:
    """An answer's question dimension and the answer's sentiment on the 1-5 scale (3 = neutral)."""

    unit_id: str
    dimension: str
    dimension_confidence: float
    dimension_source: str  # prototype | llm
    sentiment: float


@dataclass(frozen=True)
class Rating:
    """One interview's 1-5 score on one dimension, and where it came from."""

    interview_id: str
    session_model: str
    dimension: str
    score: float
    source: str  # explicit | llm | estimate
    evidence: str | None = None
    unit_id: str | None = None


@dataclass(frozen=True)
class QualityVerdict:
    """Whether an interview is low quality, and why (reasons are short codes)."""

    interview_id: str
    session_model: str
    low_quality: bool
    reasons: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelEngagement:
    """How much one session model's users engaged; durations are None when not logged."""

    session_model: str
    interviews: int
    excluded: int
    chat_rounds: float
    user_words_per_turn: float | None
    model_words_per_turn: float | None
    answer_words: float
    session_seconds: float | None
    session_seconds_median: float | None
    interview_seconds: float | None
    interview_seconds_median: float | None


@dataclass(frozen=True)
class ModelRating:
    """Mean rating of one model on one dimension with a 95% bootstrap confidence interval."""

    session_model: str
    dimension: str
    n: int
    mean: float
    ci_low: float
    ci_high: float
    n_explicit: int


@dataclass(frozen=True)
class ThemePrevalence:
    """Share of a model's interviews that touch a theme, against all other models' interviews."""

    theme_id: int
    session_model: str
    interviews_with: int
    interviews: int
    prevalence: float
    ci_low: float
    ci_high: float
    rest_prevalence: float | None  # None (and no test) when the study has one model
    difference: float | None
    cohens_h: float | None
    p_value: float | None
    p_adjusted: float | None
    significant: bool


@dataclass(frozen=True)
class ThemeTest:
    """Whether a theme's prevalence differs between models at all (chi-square, all models)."""

    theme_id: int
    statistic: float
    dof: int
    p_value: float
    p_adjusted: float
    cramers_v: float
    significant: bool


@dataclass(frozen=True)
class DimensionCorrelation:
    """Spearman correlation of two dimensions' ratings over interviews that have both."""

    dimension_a: str
    dimension_b: str
    spearman: float | None
    p_value: float | None
    n: int


@dataclass(frozen=True)
class ThemeSentiment:
    """Sentiment shares of one theme's answers for one model; `bipolar` = split opinion."""

    theme_id: int
    session_model: str
    answers: int
    positive_share: float
    negative_share: float
    mean_sentiment: float
    bipolar: bool


# Reporting: what the HTML report and the exports read (schema `reporting`, schemas/views.md).


@dataclass(frozen=True)
class ReportData:
    """One study's rows of each reporting view, keyed by view name; None = the view doesn't exist here."""

    study: str
    tables: dict[str, list[dict[str, Any]] | None]
    min_interviews_per_cell: int
    generated_at: datetime
    # Raw records of the interviews the report quotes (repository_tree.read_transcripts); the report scrubs them.
    transcripts: dict[str, dict[str, Any]] = field(default_factory=dict)

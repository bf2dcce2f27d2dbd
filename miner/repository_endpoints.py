"""SQL for what the LLM layer keeps per endpoint: the structured-output mode each base URL + model
accepts (table llm_endpoints, migration 008), and the cached replies as `miner llm cache` lists and
clears them (table llm_cache, migrations 003 and 021; repository.py loads and saves them). Same rules
as repository.py: small named functions over a connection, parameterized, upserts, no commits."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def load_endpoint_mode(conn: psycopg.Connection, base_url: str, model: str) -> str | None:
    """The request mode that last worked for this endpoint, or None when it was never learnt."""
    row = conn.execute("SELECT mode FROM llm_endpoints WHERE base_url = %s AND model = %s",
                       (base_url, model)).fetchone()
    return row[0] if row else None


def save_endpoint_mode(conn: psycopg.Connection, base_url: str, model: str, mode: str,
                       detail: str | None = None) -> None:
    """Remember the mode that worked (the latest answer wins)."""
    conn.execute(
        """INSERT INTO llm_endpoints (base_url, model, mode, detail) VALUES (%s, %s, %s, %s)
           ON CONFLICT (base_url, model) DO UPDATE
           SET mode = EXCLUDED.mode, detail = EXCLUDED.detail, checked_at = now()""",
        (base_url, model, mode, detail),
    )


def endpoint_modes(conn: psycopg.Connection) -> list[dict]:
    """Every endpoint learnt, newest first."""
    rows = conn.execute("SELECT base_url, model, mode, detail, checked_at FROM llm_endpoints "
                        "ORDER BY checked_at DESC").fetchall()
    return [dict(zip(("base_url", "model", "mode", "detail", "checked_at"), row)) for row in rows]


# The WHERE clause both cache functions share (a constant; the values are parameters); a None filter matches all.
_CACHE_FILTER = """(%(model)s::text IS NULL OR model = %(model)s)
    AND (%(base_url)s::text IS NULL OR base_url = %(base_url)s)
    AND (NOT %(invalid_only)s OR valid IS FALSE)"""


def llm_cache_groups(conn: psycopg.Connection, model: str | None = None, base_url: str | None = None,
                     invalid_only: bool = False) -> list[dict[str, Any]]:
    """Cached replies per endpoint, model and validity (base_url and valid are None for replies cached
    before migration 021, which no request finds any more)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""SELECT base_url, model, valid, count(*)::int AS replies FROM llm_cache WHERE {_CACHE_FILTER}
                GROUP BY base_url, model, valid ORDER BY base_url NULLS FIRST, model, valid NULLS FIRST""",
            {"model": model, "base_url": base_url, "invalid_only": invalid_only},
        ).fetchall()


def delete_llm_cache(conn: psycopg.Connection, model: str | None = None, base_url: str | None = None,
                     invalid_only: bool = False) -> list[dict[str, Any]]:
    """Drop cached replies (all, or those of a model / endpoint, or only the invalid ones); returns
    what was removed, grouped as `llm_cache_groups` groups it. The ledger keeps its rows."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"""WITH gone AS (DELETE FROM llm_cache WHERE {_CACHE_FILTER} RETURNING base_url, model, valid)
                SELECT base_url, model, valid, count(*)::int AS replies FROM gone
                GROUP BY base_url, model, valid ORDER BY base_url NULLS FIRST, model, valid NULLS FIRST""",
            {"model": model, "base_url": base_url, "invalid_only": invalid_only},
        ).fetchall()

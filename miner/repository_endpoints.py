"""SQL for what the LLM layer learnt about endpoints: the structured-output mode each base URL +
model accepts (table llm_endpoints, migration 008). Same rules as repository.py: small named
functions over a connection, parameterized, upserts, no commits."""

from __future__ import annotations

import psycopg


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

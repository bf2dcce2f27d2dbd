"""SQL for the theme tree (tables of schemas/migrations/009_theme_tree.sql) and the interview
transcripts the report's explorer opens. Small named functions over a connection, parameterized,
no commits."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from miner.tree import NodeStat, TreeNode


def save_tree(conn: psycopg.Connection, job_id: str, nodes: Sequence[TreeNode], stats: Sequence[NodeStat],
              stances: dict[str, str] | None = None) -> None:
    """Replace the job's tree with these nodes (parents before children), their counts and stances."""
    overall = {s.node_id: s for s in stats if s.session_model is None}
    conn.execute("DELETE FROM tree_nodes WHERE job_id = %s", (job_id,))
    with conn.cursor() as cur:
        cur.executemany(
            """INSERT INTO tree_nodes (job_id, node_id, parent_id, level, kind, theme_id, theme_ids, label,
                                       keywords, labeller, position, answers, interviews, stance)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            [(job_id, n.node_id, n.parent_id, n.level, n.kind, n.theme_id, list(n.theme_ids), n.label,
              list(n.keywords), n.labeller, position, overall[n.node_id].answers, overall[n.node_id].interviews,
              (stances or {}).get(n.node_id))
             for position, n in enumerate(nodes)],
        )
        cur.executemany(
            """INSERT INTO tree_node_model_stats (job_id, node_id, session_model, answers, interviews, share,
                                                  prevalence)
               VALUES (%s, %s, %s, %s, %s, %s, %s)""",
            [(job_id, s.node_id, s.session_model, s.answers, s.interviews, s.share, s.prevalence)
             for s in stats if s.session_model is not None],
        )


def load_tree(conn: psycopg.Connection, job_id: str) -> list[TreeNode]:
    """A job's tree nodes in position order (empty when the job has none)."""
    rows = conn.execute(
        """SELECT node_id, parent_id, level, kind, theme_ids, label, keywords, labeller
           FROM tree_nodes WHERE job_id = %s ORDER BY position""", (job_id,)).fetchall()
    return [TreeNode(node_id, parent, level, kind, tuple(themes), label, tuple(keywords), labeller)
            for node_id, parent, level, kind, themes, label, keywords, labeller in rows]


def next_node_numbers(conn: psycopg.Connection, study: str) -> dict[str, int]:
    """Per parent kind, one past the highest number any of the study's jobs ever used, so a retired
    area's id is never given to a new one."""
    rows = conn.execute(
        """SELECT n.kind, max(split_part(n.node_id, ':', 2)::integer) + 1
           FROM tree_nodes n JOIN jobs j USING (job_id)
           WHERE j.study = %s AND n.kind IN ('area', 'group') GROUP BY n.kind""", (study,)).fetchall()
    return {kind: number for kind, number in rows}


def read_transcripts(conn: psycopg.Connection, interview_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Interview id → its session model, interview turns and chat session (raw: the caller scrubs)."""
    if not interview_ids:
        return {}
    rows = conn.execute(
        """SELECT interview_id, session_model, record->'interview', record->'session'
           FROM interviews WHERE interview_id = ANY(%s)""", (list(interview_ids),)).fetchall()
    return {interview_id: {"session_model": model, "interview": turns or [], "session": session or []}
            for interview_id, model, turns, session in rows}

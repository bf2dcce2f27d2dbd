"""The report's theme explorer: reporting.theme_tree rows → nested nodes with per-model bars and
quotes, and the scrubbed transcripts of the quoted interviews (question and answer turns, and the
chat session when the log has one). Pure functions over rows; the template draws them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from miner.ingest import text_of
from miner.scrub import scrub_text

Rows = list[dict[str, Any]]

TURN_CHARS = 2000        # a longer message is cut: the report stays small with hundreds of transcripts
SESSION_TURNS = 40


def explorer_nodes(tree: Rows, cells: Rows, quotes: Mapping[int, Rows]) -> list[dict[str, Any]]:
    """Top-level nodes, each with `children`, `bars` (one per model, scaled to the node's widest)
    and, for a theme, its `quotes`."""
    bars: dict[str, Rows] = defaultdict(list)
    for cell in cells:
        bars[cell["node_id"]].append(cell)
    nodes = {row["node_id"]: {**row, "children": [], "bars": _bars(bars[row["node_id"]]),
                              "quotes": quotes.get(row["theme_id"], []) if row["theme_id"] is not None else []}
             for row in tree}
    roots = []
    for row in tree:  # position order: a parent is always listed before its children
        node = nodes[row["node_id"]]
        if row["parent_id"] is None or row["parent_id"] not in nodes:
            roots.append(node)
        else:
            nodes[row["parent_id"]]["children"].append(node)
    return roots


def _bars(cells: Rows) -> Rows:
    value = lambda c: c["prevalence"] if c["prevalence"] is not None else 0.0  # noqa: E731
    top = max((value(c) for c in cells), default=0.0) or 1.0
    return [{**c, "width": 0.0 if c["suppressed"] else min(100.0, 100 * value(c) / top)} for c in cells]


def quoted_interviews(quotes: Mapping[int, Rows]) -> list[str]:
    return sorted({q["interview_id"] for rows in quotes.values() for q in rows if q.get("interview_id")})


def scrubbed_transcripts(raw: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Interview id → {session_model, interview: [{role, text}], session: [...]}, every text scrubbed
    of identifiers and cut to TURN_CHARS; the interview's answer turns are numbered as units are."""
    out = {}
    for interview_id, record in raw.items():
        turns, answer_index = [], 0
        for message in record.get("interview") or []:
            text = text_of(message.get("content") or "").strip()
            turn = {"role": message.get("role"), "text": _cut(scrub_text(text))}
            if message.get("role") == "user":
                turn["answer_index"] = answer_index
                answer_index += 1
            turns.append(turn)
        session = [{"role": m.get("role"), "text": _cut(scrub_text(text_of(m.get("content") or "").strip()))}
                   for m in (record.get("session") or [])[:SESSION_TURNS]]
        out[interview_id] = {"session_model": record.get("session_model"), "interview": turns, "session": session,
                             "session_cut": len(record.get("session") or []) > SESSION_TURNS}
    return out


def _cut(text: str) -> str:
    return text if len(text) <= TURN_CHARS else text[:TURN_CHARS] + " …"

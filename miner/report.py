"""Report stage: one study's reporting-view rows → one self-contained HTML page.

plotly.js is inlined (no CDN: the file opens offline); every chart is a plotly figure drawn from
the same rows a reader role sees, so suppressed cells stay suppressed in the report. A section
whose data doesn't exist yet says so instead of drawing an empty chart.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from miner import report_charts as charts
from miner import report_tree
from miner.report_tree import explorer_nodes, scrubbed_transcripts
from miner.records import ReportData

logger = logging.getLogger(__name__)

QUOTES_PER_CARD = 3
QUOTE_CHARS = 360
KEY_DIFFERENCES_PER_MODEL = 5
RUNS_SHOWN = 12


class NothingToReportError(LookupError):
    """The study has no published job (no succeeded analysis yet)."""


def render_report(data: ReportData) -> str:
    """The HTML page of a study's published job."""
    import plotly.offline

    tables = data.tables
    studies = tables.get("studies") or []
    if not studies:
        raise NothingToReportError(f"study {data.study!r} has no published job; run `miner analyze --study "
                                   f"{data.study}` first")
    study = studies[0]
    themes = tables.get("themes") or []
    cells = tables.get("theme_by_model") or []
    theme_order = [t["theme_id"] for t in themes]
    colours = charts.model_colours(study["session_models"] or sorted({c["session_model"] for c in cells}))
    sections = {
        "prevalence": _chart(charts.prevalence_heatmap(cells, theme_order), "chart-prevalence",
                             _missing(tables, "theme_by_model", "no themes were found in this study")),
        "ratings": _chart(charts.ratings_chart(tables.get("model_ratings") or []), "chart-ratings",
                          _missing(tables, "model_ratings", "the published job has no rating statistics (the "
                                   "statistics stage has not run for it)")),
        "correlations": _chart(charts.correlation_heatmap(tables.get("dimension_correlations") or []),
                               "chart-correlations",
                               _missing(tables, "dimension_correlations", "the published job has no dimension "
                                        "correlations (the statistics stage has not run for it)")),
        "timeline": _chart(charts.theme_timeline(tables.get("theme_history") or [], tables.get("job_history") or [],
                                                 theme_order), "chart-timeline",
                           _missing(tables, "theme_history", "the study has one analysed run so far; the chart "
                                    "appears after the next nightly run")),
    }
    cards = _theme_cards(tables, themes, colours)
    quotes = {card["theme_id"]: card["quotes"] for card in cards}
    page = _environment().get_template("report.html.j2").render(
        data=data, study=study, sections=sections, colours=colours,
        plotly_js=Markup(plotly.offline.get_plotlyjs()),
        uses_prevalence=any(c.get("prevalence") is not None for c in cells),
        differences=_key_differences(cells), cards=cards,
        explorer=explorer_nodes(tables.get("theme_tree") or [], tables.get("theme_tree_by_model") or [], quotes),
        explorer_note=_missing(tables, "theme_tree", "the published job has no theme tree (it ran before the tree "
                               "existed; the next run draws it)"),
        transcripts=_json_script(scrubbed_transcripts(data.transcripts)), transcript_ids=set(data.transcripts),
        cost=_cost(tables, study["job_id"]), runs=(tables.get("job_history") or [])[-RUNS_SHOWN:][::-1],
        quality=_quality(tables), suppressed_cells=sum(1 for c in cells if c["suppressed"]),
    )
    logger.info("report: study %s, %d themes, %d charts", data.study, len(themes),
                sum(1 for s in sections.values() if s["html"]))
    return page


def quoted_interviews(data: ReportData) -> list[str]:
    """The interviews behind the quotes the report shows (the explorer links each to its transcript)."""
    themes = data.tables.get("themes") or []
    return report_tree.quoted_interviews({c["theme_id"]: c["quotes"] for c in _theme_cards(data.tables, themes, {})})


def _json_script(value: Any) -> Markup:
    """JSON safe inside <script type="application/json">: no '</script>' can end it early."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("miner", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["pct"] = lambda v, digits=0: "–" if v is None else f"{v:.{digits}%}"
    env.filters["num"] = lambda v: "–" if v is None else f"{v:,}"
    env.filters["when"] = lambda v: "–" if v is None else f"{v:%Y-%m-%d %H:%M}"
    env.filters["short"] = lambda v: str(v)[:8]
    return env


def _chart(figure, div_id: str, note: str) -> dict[str, Any]:
    return {"html": Markup(charts.to_div(figure, div_id)) if figure is not None else None, "note": note, "id": div_id}


def _missing(tables: dict[str, Any], view: str, empty_reason: str) -> str:
    """Why a section has nothing to show."""
    if tables.get(view) is None:
        return f"Not available yet: this database has no reporting.{view} view (run `miner db migrate`)."
    return f"Not available yet: {empty_reason}."


def _key_differences(cells: list[dict[str, Any]]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Per model: the themes significantly more and less common than among the other models."""
    found: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {"more": [], "less": []})
    for cell in cells:
        if cell.get("more_common"):
            found[cell["session_model"]]["more"].append(cell)
        elif cell.get("less_common"):
            found[cell["session_model"]]["less"].append(cell)
    for model in found.values():
        model["more"] = sorted(model["more"], key=lambda c: -c["difference"])[:KEY_DIFFERENCES_PER_MODEL]
        model["less"] = sorted(model["less"], key=lambda c: c["difference"])[:KEY_DIFFERENCES_PER_MODEL]
    return dict(sorted(found.items()))


def _theme_cards(tables: dict[str, Any], themes: list[dict[str, Any]], colours: dict[str, str]) -> list[dict[str, Any]]:
    cells, sentences, evidence = defaultdict(list), defaultdict(list), defaultdict(list)
    for cell in tables.get("theme_by_model") or []:
        cells[cell["theme_id"]].append(cell)
    for row in tables.get("theme_model_sentences") or []:
        if row["sentence"]:
            sentences[row["theme_id"]].append(row)
    for row in tables.get("theme_evidence") or []:
        if not row["suppressed"] and row["answer"]:
            evidence[row["theme_id"]].append(row)
    cards = []
    for theme in themes:
        theme_cells = cells[theme["theme_id"]]
        # Bars share the card's scale, wide enough for the longest interval whisker.
        top = max((c.get("ci_high") or c.get("prevalence") or c.get("share") or 0 for c in theme_cells), default=0) or 1
        cards.append({**theme, "cells": [_bar(c, top) for c in theme_cells],
                      "sentences": sentences[theme["theme_id"]],
                      "quotes": _quotes(evidence[theme["theme_id"]])})
    return cards


def _bar(cell: dict[str, Any], top: float) -> dict[str, Any]:
    """A card's per-model row: bar and whisker positions as percentages of the card's widest value."""
    value = cell.get("prevalence") if cell.get("prevalence") is not None else cell.get("share")
    scale = lambda v: 0 if v is None else min(100.0, 100 * v / top)  # noqa: E731
    return {**cell, "value": value, "width": scale(value), "low": scale(cell.get("ci_low")),
            "high": scale(cell.get("ci_high"))}


def _quotes(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The theme's ranked quotes, topped up from its other answers (other models first) to three."""
    ranked = sorted((r for r in rows if r["quote_rank"] is not None), key=lambda r: r["quote_rank"])
    chosen = ranked[:QUOTES_PER_CARD]
    seen_text = {r["answer"].casefold() for r in chosen}
    rest = [r for r in rows if r["quote_rank"] is None and r["answer"].casefold() not in seen_text]
    while len(chosen) < QUOTES_PER_CARD and rest:
        models = {r["session_model"] for r in chosen}
        pick = next((r for r in rest if r["session_model"] not in models), rest[0])
        rest.remove(pick)
        if pick["answer"].casefold() not in seen_text:
            seen_text.add(pick["answer"].casefold())
            chosen.append(pick)
    return [{**r, "text": r["answer"] if len(r["answer"]) <= QUOTE_CHARS else r["answer"][:QUOTE_CHARS] + "…"}
            for r in chosen]


def _cost(tables: dict[str, Any], job_id: Any) -> dict[str, Any]:
    """The published job's LLM ledger and run time."""
    rows = [r for r in tables.get("llm_cost") or [] if r["job_id"] == job_id]
    job = next((r for r in tables.get("job_history") or [] if r["job_id"] == job_id), None)
    columns = ("calls", "requests", "cache_hits", "billed_tokens", "cached_tokens", "ok", "invalid", "failed",
               "skipped", "latency_ms")
    total = {c: sum(int(r[c] or 0) for r in rows) for c in columns}
    return {"rows": rows, "total": total, "job": job, "available": tables.get("llm_cost") is not None}


def _quality(tables: dict[str, Any]) -> dict[str, Any]:
    rows = tables.get("quality_exclusions")
    if rows is None:
        return {"rows": [], "note": _missing(tables, "quality_exclusions", "")}
    reasons = sorted({r["reason"] for r in rows} - {"any"}) + (["any"] if any(r["reason"] == "any" for r in rows) else [])
    models = sorted({r["session_model"] for r in rows})
    table = {(r["session_model"], r["reason"]): r for r in rows}
    return {"rows": rows, "reasons": reasons, "models": models, "table": table,
            "excluded": any(r["excluded_from_statistics"] for r in rows),
            "note": None if rows else "No interview was flagged by the quality filter." if tables.get("model_ratings")
            else "Not available yet: the published job has no quality verdicts (the statistics stage has not run for it)."}

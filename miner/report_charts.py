"""Plotly figures of the HTML report, built from reporting-view rows (dicts keyed by the contract's
column names). Each builder returns None when its rows hold nothing to draw."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go

Rows = list[dict[str, Any]]

# Tableau 10: distinct, colour-blind-tolerable, one colour per session model in every chart.
MODEL_COLOURS = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#EECA3B", "#9D755D",
                 "#FF9DA6", "#BAB0AC")
FONT = "system-ui, -apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif"
LABEL_CHARS = 38
TIMELINE_SHOWN = 8  # themes drawn at first on the timeline; the rest are one legend click away


def model_colours(models: list[str]) -> dict[str, str]:
    return {model: MODEL_COLOURS[i % len(MODEL_COLOURS)] for i, model in enumerate(sorted(set(models)))}


def theme_name(theme_id: int, label: str | None) -> str:
    """'#3 Label…' short enough for an axis."""
    text = label or "(suppressed theme)"
    if len(text) > LABEL_CHARS:
        text = text[: LABEL_CHARS - 1].rstrip() + "…"
    return f"#{theme_id} {text}"


def _layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    base = {"height": height, "autosize": True, "font": {"family": FONT, "size": 13, "color": "#1f2933"},
            "paper_bgcolor": "white", "plot_bgcolor": "white", "margin": {"l": 10, "r": 10, "t": 30, "b": 10},
            "hoverlabel": {"font": {"family": FONT}}}
    fig.update_layout(**{**base, **extra})
    return fig


def prevalence_heatmap(cells: Rows, theme_order: list[int]) -> go.Figure | None:
    """Themes × models: share of each model's interviews touching the theme (share of answers when
    prevalence statistics are absent); ▲/▼ mark significant one-vs-rest differences."""
    if not cells:
        return None
    use_prevalence = any(c.get("prevalence") is not None for c in cells)
    measure = "prevalence" if use_prevalence else "share"
    models = sorted({c["session_model"] for c in cells})
    by_key = {(c["theme_id"], c["session_model"]): c for c in cells}
    labels = {c["theme_id"]: c["label"] for c in cells}
    themes = [t for t in theme_order if any((t, m) in by_key for m in models)]
    z, text, hover, hidden = [], [], [], []
    for theme_id in themes:
        z_row, text_row, hover_row, hidden_row = [], [], [], []
        for model in models:
            cell = by_key.get((theme_id, model))
            suppressed = bool(cell and cell["suppressed"])
            hidden_row.append(1 if suppressed else None)
            if cell is None or suppressed or cell.get(measure) is None:
                z_row.append(None)
                text_row.append("")
                hover_row.append("")
                continue
            value = cell[measure]
            mark = " ▲" if cell.get("more_common") else " ▼" if cell.get("less_common") else ""
            z_row.append(value)
            text_row.append(f"<b>{value:.0%}{mark}</b>" if mark else f"{value:.0%}")
            detail = [f"<b>{model}</b>", f"{measure}: {value:.1%}"]
            if cell.get("ci_low") is not None:
                detail.append(f"95% CI: {cell['ci_low']:.1%} – {cell['ci_high']:.1%}")
            if cell.get("rest_prevalence") is not None:
                detail.append(f"other models: {cell['rest_prevalence']:.1%}")
            if cell.get("p_adjusted") is not None:
                detail.append(f"adjusted p: {cell['p_adjusted']:.3g}" + (" (significant)" if cell["significant"] else ""))
            detail.append(f"{cell['answers']} answers, {cell['interviews']} interviews")
            hover_row.append("<br>".join(detail))
        z.append(z_row)
        text.append(text_row)
        hover.append(hover_row)
        hidden.append(hidden_row)
    names = [theme_name(t, labels.get(t)) for t in themes]
    top = max((v for row in z for v in row if v is not None), default=1.0) or 1.0
    fig = go.Figure(go.Heatmap(
        z=z, x=models, y=names, text=text, texttemplate="%{text}", textfont={"size": 12},
        customdata=hover, hovertemplate="%{y}<br>%{customdata}<extra></extra>", hoverongaps=False,
        colorscale=[[0, "#f4f8fc"], [0.5, "#7fb0d8"], [1, "#1d4f91"]], zmin=0, zmax=top, xgap=3, ygap=3,
        colorbar={"title": {"text": "of interviews" if use_prevalence else "of answers"}, "tickformat": ".0%",
                  "thickness": 12, "len": min(1.0, 300 / (26 * len(themes) + 60))},
    ))
    if any(v for row in hidden for v in row):  # suppressed cells: grey, labelled, no number
        fig.add_trace(go.Heatmap(
            z=hidden, x=models, y=names, colorscale=[[0, "#e3e6ea"], [1, "#e3e6ea"]], showscale=False,
            text=[["<i>suppressed</i>" if v else "" for v in row] for row in hidden], texttemplate="%{text}", textfont={"size": 11, "color": "#6b7280"}, xgap=3, ygap=3,
            hovertemplate="%{y}<br>%{x}: suppressed, fewer than K interviews<extra></extra>", hoverongaps=False,
        ))
    fig.update_yaxes(autorange="reversed", tickfont={"size": 12}, showgrid=False)
    fig.update_xaxes(side="top", tickfont={"size": 13}, showgrid=False)
    return _layout(fig, height=26 * len(themes) + 80)


def ratings_chart(ratings: Rows) -> go.Figure | None:
    """Mean rating per dimension, one marker per model with its 95% interval."""
    rows = [r for r in ratings if r["mean"] is not None]
    if not rows:
        return None
    colours = model_colours(sorted({r["session_model"] for r in ratings}))
    dimensions = sorted({r["dimension"] for r in rows})
    fig = go.Figure()
    for model, colour in colours.items():
        mine = {r["dimension"]: r for r in rows if r["session_model"] == model}
        dims = [d for d in dimensions if d in mine]
        fig.add_trace(go.Scatter(
            x=dims, y=[mine[d]["mean"] for d in dims], name=model, mode="markers",
            marker={"size": 11, "color": colour, "line": {"width": 1, "color": "white"}},
            error_y={"type": "data", "symmetric": False, "thickness": 2, "width": 6,
                     "array": [mine[d]["ci_high"] - mine[d]["mean"] for d in dims],
                     "arrayminus": [mine[d]["mean"] - mine[d]["ci_low"] for d in dims]},
            customdata=[[mine[d]["ci_low"], mine[d]["ci_high"], mine[d]["n"], mine[d]["n_explicit"]] for d in dims],
            hovertemplate=("<b>" + model + "</b> · %{x}<br>mean %{y:.2f} (95% CI %{customdata[0]:.2f}–"
                           "%{customdata[1]:.2f})<br>n = %{customdata[2]}, %{customdata[3]} gave a number"
                           "<extra></extra>"),
        ))
    fig.update_yaxes(range=[1, 5], dtick=1, title="mean rating (1–5)", gridcolor="#e5e7eb", zeroline=False)
    fig.update_xaxes(showline=True, linecolor="#9ca3af")
    return _layout(fig, height=380, scattermode="group", scattergap=0.6,
                   legend={"orientation": "h", "y": 1.12, "x": 0})


def correlation_heatmap(correlations: Rows) -> go.Figure | None:
    """Spearman correlations between dimensions (both orders are in the rows; the diagonal is 1)."""
    rows = [r for r in correlations if r["spearman"] is not None]
    if not rows:
        return None
    dimensions = sorted({r["dimension_a"] for r in correlations} | {r["dimension_b"] for r in correlations})
    value = {(r["dimension_a"], r["dimension_b"]): r for r in rows}
    z, text = [], []
    for a in dimensions:
        z_row, text_row = [], []
        for b in dimensions:
            r = value.get((a, b))
            rho = 1.0 if a == b else (r["spearman"] if r else None)
            z_row.append(rho)
            text_row.append("" if rho is None else f"{rho:.2f}")
        z.append(z_row)
        text.append(text_row)
    n = [[(value.get((a, b)) or {}).get("n", "") for b in dimensions] for a in dimensions]
    fig = go.Figure(go.Heatmap(
        z=z, x=dimensions, y=dimensions, text=text, texttemplate="%{text}", customdata=n,
        hovertemplate="%{y} × %{x}<br>Spearman ρ = %{z:.2f}<br>n = %{customdata}<extra></extra>",
        colorscale="RdBu", zmid=0, zmin=-1, zmax=1, xgap=2, ygap=2,
        colorbar={"title": {"text": "ρ"}, "thickness": 12},
    ))
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return _layout(fig, height=70 * len(dimensions) + 90)


def theme_timeline(history: Rows, runs: Rows, theme_order: list[int]) -> go.Figure | None:
    """Each theme's share of all answers, run by run, with a menu to look at one model at a time.

    Suppressed cells count as absent, so a theme's share can dip by at most K-1 interviews' answers.
    """
    run_ids = sorted({r["job_id"] for r in history}, key=lambda j: min(r["finished_at"] for r in history
                                                                          if r["job_id"] == j))
    if len(run_ids) < 2:
        return None
    finished = {r["job_id"]: r["finished_at"] for r in history}
    units = {r["job_id"]: r["units"] for r in runs if r.get("units")}
    models = sorted({r["session_model"] for r in history})
    labels: dict[int, str | None] = {}
    answers: dict[tuple[str, int, str], int] = defaultdict(int)
    shares: dict[tuple[str, int, str], float] = {}
    for r in history:
        labels[r["theme_id"]] = r["label"] or labels.get(r["theme_id"])
        if r["answers"] is not None:
            answers[(r["job_id"], r["theme_id"], "all")] += r["answers"]
            shares[(r["job_id"], r["theme_id"], r["session_model"])] = r["share"]
    for (job_id, theme_id, _), count in list(answers.items()):
        if job_id in units:
            shares[(job_id, theme_id, "all")] = count / units[job_id]
    themes = [t for t in theme_order if t in labels] + sorted(set(labels) - set(theme_order))
    views = ["all"] + models
    fig = go.Figure()
    for view in views:
        for rank, theme_id in enumerate(themes):
            fig.add_trace(go.Scatter(
                x=[finished[j] for j in run_ids], y=[shares.get((j, theme_id, view)) for j in run_ids],
                name=theme_name(theme_id, labels[theme_id]), mode="lines+markers", legendgroup=str(theme_id),
                visible=(True if rank < TIMELINE_SHOWN else "legendonly") if view == "all" else False,
                hovertemplate="%{fullData.name}<br>%{x|%Y-%m-%d %H:%M}: %{y:.1%}<extra>" + view + "</extra>",
                connectgaps=False,
            ))
    buttons = []
    for index, view in enumerate(views):
        visible = []
        for other in views:
            visible += [(True if rank < TIMELINE_SHOWN else "legendonly") if other == view else False
                        for rank in range(len(themes))]
        buttons.append({"label": "All models" if view == "all" else view, "method": "update",
                        "args": [{"visible": visible}]})
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", gridcolor="#e5e7eb",
                     title="share of answers")
    fig.update_xaxes(gridcolor="#f1f5f9")
    return _layout(fig, height=430, legend={"font": {"size": 11}}, margin={"l": 10, "r": 10, "t": 50, "b": 10},
                   updatemenus=[{"buttons": buttons, "direction": "down", "x": 0, "y": 1.14, "xanchor": "left",
                                 "showactive": True, "bgcolor": "white"}])


def to_div(fig: go.Figure, div_id: str) -> str:
    """The figure as a <div> plus its newPlot script; plotly.js itself is inlined once by the page."""
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, default_width="100%",
                       config={"responsive": True, "displayModeBar": False})


"""HALIE crossword as a study (issue 12): do the published theme × model cells agree with people's
helpfulness ratings?

Ingests ../shared/data/halie_crossword.jsonl (304 interviews, 4 LMs) into a database of its own
(miner.db.temporary_database), runs the real analysis job in process (miner.pipeline, offline: no
LLM), and reads what a researcher reads: `themes`, `theme_by_model` (its one-vs-rest Fisher test,
adjusted over the job's tests, and `stance`) and `theme_sentiment` (`bipolar`). The ratings
(halie_crossword_ratings.csv) are kept out of the interviews and used only to score:

- a significant cell (`more_common` or `less_common`) of a positive or negative theme is *aligned*
  when a negative theme is more common for a model rated below the rest (mean helpfulness of its
  people vs that of everyone else's) or less common for one rated above; the reverse for positive
  themes; *against* when the other way round. Cells of mixed or neutral themes are counted apart;
- a theme with a mixed stance holding more than 20% of the job's opinion units must be flagged
  bipolar (`theme_sentiment.bipolar` for one of its models).

Targets: ≥ 8 aligned, 0 against, no unflagged mixed theme above 20%.

    python benchmarks/bench_halie_study.py [--out benchmarks/results/halie_study.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from miner import db, repository, repository_jobs
from miner.components import Components
from miner.ingest import ingest_file
from miner.pipeline import run_job
from miner.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ADMIN_URL = os.environ.get("MINER_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
STUDY = "halie-crossword"
MIXED_SHARE = 0.2
TARGET_ALIGNED = 8


def helpfulness(path: Path) -> dict[str, list[float]]:
    """Model → its people's helpfulness ratings (1–5)."""
    by_model: dict[str, list[float]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            by_model[row["model"]].append(float(row["helpfulness"]))
    return dict(by_model)


def rated_above_rest(ratings: dict[str, list[float]]) -> dict[str, dict]:
    """Per model: its mean helpfulness, the rest's, and whether it is rated above them."""
    out = {}
    for model, own in ratings.items():
        rest = [r for other, values in ratings.items() if other != model for r in values]
        mean, rest_mean = sum(own) / len(own), sum(rest) / len(rest)
        out[model] = {"mean": round(mean, 3), "rest_mean": round(rest_mean, 3), "n": len(own),
                      "above": mean > rest_mean}
    return out


def verdict(stance: str, more_common: bool, above: bool) -> str:
    """aligned / against for a significant cell of a positive or negative theme; else unscored."""
    if stance not in ("positive", "negative"):
        return "unscored"
    good = (stance == "positive") == more_common  # the theme says the model is better than the rest
    return "aligned" if good == above else "against"


def score(themes: list[dict], cells: list[dict], bipolar: dict[int, bool], models: dict[str, dict],
          units: int) -> dict:
    """The targets' counts from the published rows."""
    scored = []
    for cell in cells:
        if cell["suppressed"] or not cell["significant"]:
            continue
        above = models[cell["session_model"]]["above"]
        scored.append({**cell, "verdict": verdict(cell["stance"], bool(cell["more_common"]), above)})
    mixed_large = [{"theme_id": t["theme_id"], "label": t["label"], "share": round(t["answers"] / units, 3),
                    "bipolar": bipolar.get(t["theme_id"], False)}
                   for t in themes if t["stance"] == "mixed" and t["answers"] > MIXED_SHARE * units]
    count = {v: sum(c["verdict"] == v for c in scored) for v in ("aligned", "against", "unscored")}
    return {
        **count, "significant": len(scored),
        "mixed_over_20pct": mixed_large,
        "met": {"aligned_at_least_8": count["aligned"] >= TARGET_ALIGNED, "none_against": count["against"] == 0,
                "no_unflagged_mixed_over_20pct": not any(not m["bipolar"] for m in mixed_large)},
        "cells": [{k: c[k] for k in ("theme_id", "label", "stance", "session_model", "prevalence", "rest_prevalence",
                                     "p_adjusted", "more_common", "verdict")} for c in scored],
    }


@contextmanager
def database(url: str | None) -> Iterator[str]:
    """A temporary database, or `url` (migrated; its embedding cache then serves later runs)."""
    if url is None:
        with db.temporary_database(ADMIN_URL, "miner_bench_halie") as temporary:
            yield temporary
        return
    with psycopg.connect(url) as conn:
        db.migrate(conn)
    yield url


def run(data: Path, ratings_path: Path, settings: Settings, url: str | None = None) -> dict:
    parts = Components.from_settings(settings, llm_client=None)
    models = rated_above_rest(helpfulness(ratings_path))
    started = time.perf_counter()
    study = STUDY if url is None else f"{STUDY}-{uuid.uuid4().hex[:8]}"
    with database(url) as url, psycopg.connect(url) as conn:
        result = ingest_file(data, study, settings.max_record_bytes)
        repository.save_interviews(conn, result.interviews)
        job_id = repository_jobs.create_job(conn, study)
        conn.commit()
        counts = run_job(conn, job_id, parts)
        seconds = time.perf_counter() - started
        with conn.cursor(row_factory=dict_row) as cur:
            themes = cur.execute("SELECT theme_id, label, stance, answers, interviews, models_differ "
                                 "FROM reporting.themes WHERE study = %s ORDER BY answers DESC", (study,)).fetchall()
            cells = cur.execute(
                "SELECT theme_id, label, stance, session_model, answers, prevalence, rest_prevalence, p_adjusted, "
                "significant, more_common, less_common, suppressed FROM reporting.theme_by_model WHERE study = %s "
                "ORDER BY theme_id, session_model", (study,)).fetchall()
            bipolar = {r["theme_id"]: bool(r["flagged"]) for r in cur.execute(
                "SELECT theme_id, bool_or(coalesce(bipolar, false)) AS flagged FROM reporting.theme_sentiment "
                "WHERE study = %s GROUP BY theme_id", (study,))}
            sentiment = cur.execute(
                "SELECT theme_id, session_model, answers, positive_share, negative_share, mean_sentiment, bipolar, "
                "suppressed FROM reporting.theme_sentiment WHERE study = %s ORDER BY theme_id, session_model",
                (study,)).fetchall()
    units = counts.get("units") or sum(t["answers"] for t in themes)
    return {
        "study": study, "interviews": len(result.interviews), "rejected": len(result.rejected),
        "answers": counts.get("answers"), "no_opinion": counts.get("no_opinion"), "units": units,
        "themes": len(themes), "seconds": round(seconds, 1), "models": models,
        **score(themes, cells, bipolar, models, units),
        "theme_list": [{**t, "share": round(t["answers"] / units, 3), "bipolar": bipolar.get(t["theme_id"], False)}
                       for t in themes],
        "low_quality": counts.get("low_quality"), "excluded": counts.get("excluded"),
        "sentiment_cells": sentiment,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA / "halie_crossword.jsonl")
    parser.add_argument("--ratings", type=Path, default=DATA / "halie_crossword_ratings.csv")
    parser.add_argument("--database-url", help="run in this database (a new study name each run) instead of a "
                        "temporary one, so its embedding cache serves the next run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/halie_study.json"))
    args = parser.parse_args()
    for path in (args.data, args.ratings):
        if not path.exists():
            raise SystemExit(f"{path} is absent: this benchmark reads ../shared/data in place")
    row = run(args.data, args.ratings, Settings(), args.database_url)
    print(json.dumps({k: v for k, v in row.items() if k not in ("cells", "theme_list", "sentiment_cells")}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

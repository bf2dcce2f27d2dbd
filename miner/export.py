"""Export stage: one study's reporting-view rows → one file per view for pandas or a BI tool.

csv (arrays and JSON as JSON text), parquet (typed columns, arrays as lists, via pyarrow) or json
(an array of row objects per view). A manifest.json lists the files, the study, the privacy
threshold and what each view means, so an export travels with its own documentation.
"""

from __future__ import annotations

import csv
import json
import logging
import re
import uuid
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from miner.records import ReportData

logger = logging.getLogger(__name__)

FORMATS = ("csv", "parquet", "json")
# OWASP "CSV injection": a spreadsheet runs a cell starting with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class ExportFormatError(ValueError):
    """The export format is not one of csv, parquet, json."""


def export_study(data: ReportData, fmt: str, out_dir: Path, contract: dict[str, dict[str, Any]]) -> list[Path]:
    """Write each reporting view's rows of the study to out_dir; returns the files written (manifest last).

    `contract` is repository_reporting.view_contract's answer: the columns an empty view still gets.
    """
    if fmt not in FORMATS:
        raise ExportFormatError(f"format {fmt!r}: choose one of {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written, manifest = [], {"study": data.study, "generated_at": data.generated_at.isoformat(), "format": fmt,
                             "min_interviews_per_cell": data.min_interviews_per_cell, "views": {}}
    for view, rows in data.tables.items():
        if rows is None:
            continue
        columns = [c["name"] for c in contract.get(view, {}).get("columns", [])] or list(rows[0] if rows else [])
        path = out_dir / f"{view}.{fmt}"
        {"csv": _write_csv, "parquet": _write_parquet, "json": _write_json}[fmt](path, columns, rows)
        written.append(path)
        manifest["views"][view] = {"file": path.name, "rows": len(rows),
                                   "description": contract.get(view, {}).get("description", ""),
                                   "columns": contract.get(view, {}).get("columns", [])}
    manifest_path = out_dir / "manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    logger.info("export: study %s → %d %s files in %s", data.study, len(written), fmt, out_dir)
    return written + [manifest_path]


def default_export_dir(study: str) -> Path:
    """`<study>-export` in the working directory, the study name made one safe path component.

    Study names are free text (`../../x`, `a/b`, control characters): only letters, digits, `.`, `_`
    and `-` are kept, dot runs become one dot, and no leading dot, so the folder cannot leave `.`.
    """
    name = re.sub(r"[^\w.-]+", "_", study)
    name = re.sub(r"\.{2,}", ".", name).strip("._-")[:100]
    return Path(f"{name or 'study'}-export")


def _plain(value: Any, nested_as_text: bool) -> Any:
    """A value every writer takes: ids and decimals as plain types, JSON objects as text."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(value, (list, tuple)):
        items = [_plain(v, False) for v in value]
        return json.dumps(items, default=str) if nested_as_text else items
    return value


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([_csv_cell(c) for c in columns])
        for row in rows:
            writer.writerow([_csv_cell(_plain(row.get(c), True)) for c in columns])


def _csv_cell(value: Any) -> Any:
    """One CSV cell; text a spreadsheet would run as a formula (`=HYPERLINK(...)`) gets a leading `'`.

    Numbers stay numbers: only text is neutralised, so -0.25 is still -0.25.
    """
    if value is None:
        return ""
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _write_json(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    records = [{c: _plain(row.get(c), False) for c in columns} for row in rows]
    path.write_text(json.dumps(records, ensure_ascii=False, indent=1,
                               default=lambda v: v.isoformat() if isinstance(v, (datetime, date)) else str(v)) + "\n")


def _write_parquet(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:  # a declared dependency; only a broken install lacks it
        from miner.components import NotInstalledError

        raise NotInstalledError("pip install pyarrow") from exc
    records = [{c: _plain(row.get(c), False) for c in columns} for row in rows]
    table = (pa.Table.from_pylist(records) if records
             else pa.table({c: pa.array([], type=pa.null()) for c in columns}))
    pq.write_table(table.select(columns), path)

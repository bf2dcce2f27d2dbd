"""Ingest stage: read interview-log files, validate each record, split good from bad.

A bad record never takes the good ones of its file down with it: each record is decoded,
parsed and validated on its own, and failures become `Rejected` entries naming the field.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match

from miner import decode
from miner.records import Interview, Rejected, interview_from_record, message_text

logger = logging.getLogger(__name__)

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "schemas" / "interview-log.schema.json"
JSONL_SUFFIXES = (".jsonl", ".ndjson")
INPUT_SUFFIXES = (".json", *JSONL_SUFFIXES)  # compared case-insensitively: LOGS.JSON is read too
RAW_EXCERPT_CHARS = 2000
ERROR_VALUE_CHARS = 200
_NON_SPACE = re.compile(rb"\S")
_NEXT_OBJECT = re.compile(rb"\n\{")  # an object opening at a line's start: the next of jq's records


class InputSchemaError(ValueError):
    """A record does not match the interview-log schema."""


@dataclass(frozen=True)
class IngestResult:
    """Valid interviews and rejected records of one or more files, in file order."""

    interviews: tuple[Interview, ...]
    rejected: tuple[Rejected, ...]
    skipped: tuple[str, ...] = ()  # files in the given directories that are not interview logs


@cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    checker = jsonschema.FormatChecker(formats=())
    # The stock date-time check needs an optional package; fromisoformat is strict enough.
    checker.checks("date-time", raises=ValueError)(lambda value: not isinstance(value, str) or bool(datetime.fromisoformat(value)))
    return jsonschema.Draft202012Validator(schema, format_checker=checker)


def iter_input_files(paths: Iterable[Path], skipped: list[Path] | None = None) -> Iterator[Path]:
    """Expand directories into their .json/.jsonl/.ndjson files (any case; sorted, recursive).

    Other files found in a directory are appended to `skipped`, so the caller can say so; so are hidden
    ones (a name starting with "." below the directory: `.ipynb_checkpoints/` copies, macOS's `._x.json`),
    which are not the study's records. A path named on its own is read whatever its name.
    """
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                hidden = any(part.startswith(".") for part in found.relative_to(path).parts)
                if found.suffix.lower() in INPUT_SUFFIXES and not hidden:
                    yield found
                elif skipped is not None:
                    skipped.append(found)
        elif path.exists():
            yield path
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")


def ingest_files(paths: Iterable[Path], study: str, max_record_bytes: int) -> IngestResult:
    """Read every record of the given files/directories into interviews and rejections."""
    paths = [Path(p) for p in paths]
    for path in paths:  # before reading anything: a typo in the last path should not cost a long read
        if not path.exists():
            raise FileNotFoundError(f"no such file or directory: {path}")
    interviews: list[Interview] = []
    rejected: list[Rejected] = []
    skipped: list[Path] = []
    for path in iter_input_files(paths, skipped):
        result = ingest_file(path, study, max_record_bytes)
        interviews.extend(result.interviews)
        rejected.extend(result.rejected)
    if skipped:
        logger.info("ingest: skipped %d files that are hidden or not %s", len(skipped), "/".join(INPUT_SUFFIXES))
    return IngestResult(tuple(interviews), tuple(rejected), tuple(str(p) for p in skipped))


def ingest_file(path: Path, study: str, max_record_bytes: int) -> IngestResult:
    """Read one .json or .jsonl file; each record is validated on its own."""
    interviews: list[Interview] = []
    rejected: list[Rejected] = []
    source = str(path)
    for position, raw, parsed, error in _read_records(path, max_record_bytes):
        if error is None:
            try:
                interviews.append(to_interview(parsed, study, source, position))
                continue
            except InputSchemaError as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 — one record's surprise must not cost its file the rest
                logger.warning("ingest: %s record %d: unexpected error", path, position, exc_info=True)
                error = f"cannot be read: {type(exc).__name__}: {_shorten(str(exc))}"
        where = f"record {position}" if position else "the file"
        rejected.append(Rejected(source, position, f"{where}: {error}", raw_excerpt(raw)))
    logger.info("ingest: %s → %d valid, %d rejected", path, len(interviews), len(rejected))
    return IngestResult(tuple(interviews), tuple(rejected))


def _read_records(path: Path, max_record_bytes: int) -> Iterator[tuple[int, str, Any, str | None]]:
    """Yield (position, raw text, parsed value, error) per record; position is 1-based (0: the file)."""
    try:
        data = decode.strip_bom(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        yield 0, "", None, f"cannot be read: {exc}"
        return
    layout = _layout(data, path.suffix.lower() in JSONL_SUFFIXES)
    if layout == "lines":
        for line_no, line in enumerate(data.split(b"\n"), start=1):
            if line.strip():
                yield (line_no, *_parse_one(line, max_record_bytes))
        return
    text = data.decode("utf-8", errors="surrogateescape")
    if layout == "document":
        if len(data) > max_record_bytes:
            yield 1, text, None, _too_big(len(data), max_record_bytes)
        else:
            yield (1, text, *decode.loads(text))
        return
    items = decode.iter_array_items(text) if layout == "array" else decode.iter_values(text)
    for index, raw, item, error in items:
        size = len(raw.encode("utf-8", errors="surrogateescape"))
        if size > max_record_bytes:
            yield index, raw, None, _too_big(size, max_record_bytes)
        else:
            yield index, raw, item, error


def _layout(data: bytes, jsonl_suffix: bool) -> str:
    """How a file holds its records: "lines" (JSONL), "array" (a JSON array), "values" (objects one
    after another, each opening at a line's start, as `jq` prints them) or "document" (one object).

    The suffix is a hint and the content decides: people save a JSON array as `.jsonl` (pretty-printed
    or on one line), JSONL or jq's output as `.json`, and read the other way all their records are lost.
    A file whose first line is a JSON value on its own is JSONL, whatever follows.
    """
    found = _NON_SPACE.search(data)
    if found is None:
        return "lines" if jsonl_suffix else "document"
    end = data.find(b"\n", found.start())
    first = data[found.start():len(data) if end < 0 else end]
    more = end >= 0 and _NON_SPACE.search(data, end) is not None
    if more and _parses(first):
        return "lines"
    if first.startswith(b"[") and (not jsonl_suffix or not more or first.strip() == b"[" or _parses(data)):
        return "array"
    if _NEXT_OBJECT.search(data, found.start()):
        return "values"
    if not jsonl_suffix:
        return "document"
    return "document" if more and _parses(data) else "lines"


def _parses(data: bytes) -> bool:
    """Whether the bytes are one JSON value (the checks decode.loads adds aside)."""
    value, error = decode.loads(data.decode("utf-8", errors="surrogateescape"))
    return value is not None or error is None


def _parse_one(line: bytes, max_record_bytes: int) -> tuple[str, Any, str | None]:
    # Files concatenated with `cat` keep each one's byte-order mark at the start of a line.
    text = line.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="surrogateescape")
    if len(line) > max_record_bytes:
        return text, None, _too_big(len(line), max_record_bytes)
    return (text, *decode.loads(text))


def raw_excerpt(raw: str) -> str:
    """An excerpt of the raw record that PostgreSQL can store (no lone surrogates, no NUL)."""
    excerpt = raw[:RAW_EXCERPT_CHARS].encode("utf-8", errors="surrogateescape")
    return excerpt.decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def _too_big(size: int, limit: int) -> str:
    return f"record is {size} bytes, over the limit of {limit} (MINER_MAX_RECORD_BYTES)"


def _shorten(text: str, limit: int = ERROR_VALUE_CHARS) -> str:
    """A message or value cut to `limit` characters: a 5 KB field value is no error message."""
    return text if len(text) <= limit else text[:limit] + f"… ({len(text)} characters)"


def validate_record(record: Any) -> None:
    """Raise InputSchemaError naming the field when the record breaks the schema."""
    if not isinstance(record, dict):
        raise InputSchemaError(f"expected a JSON object, got {type(record).__name__}")
    errors = list(_validator().iter_errors(record))
    if errors:
        raise InputSchemaError(_describe(best_match(errors), len(errors)))
    if not any(text_of(m["content"]).strip() for m in record["interview"] if m["role"] == "user"):
        raise InputSchemaError("field $.interview: every user answer is empty")


def _describe(error: jsonschema.ValidationError, total: int) -> str:
    path = error.json_path
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        message = f"field {path}.{missing[0]}: missing (required)" if missing else error.message
    elif error.validator == "oneOf" and path.endswith(".content"):
        message = f"field {path}: must be a string or a list of {{\"text\": ...}} parts"
    elif error.validator == "contains":
        message = f"field {path}: holds no user answer"
    elif error.validator == "minItems":
        message = f"field {path}: is empty"
    elif error.validator == "maxLength":
        message = f"field {path}: {len(error.instance)} characters, over the limit of {error.validator_value}"
    else:
        message = f"field {path}: {_shorten(error.message)}"
    return message + (f" (and {total - 1} more problems)" if total > 1 else "")


text_of = message_text  # message content as plain text


def record_hash(record: dict[str, Any]) -> str:
    """Content hash of a record, independent of key order and whitespace."""
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def to_interview(record: Any, study: str, source_file: str, position: int) -> Interview:
    """Validate a parsed record and build the stored Interview."""
    validate_record(record)
    external_id = record.get("id")
    interview_id = hashlib.sha256(f"{study}\n{record_hash(record)}".encode()).hexdigest()[:32]
    return interview_from_record(record, interview_id=interview_id, study=study, source_file=source_file,
                                 source_position=position, external_id=None if external_id is None else str(external_id))

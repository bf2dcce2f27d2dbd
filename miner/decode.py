"""Decoding untrusted JSON: one record's text → a value, or an error naming the field at fault.

The stdlib parser takes things PostgreSQL or the rest of the pipeline cannot: NaN and Infinity
(not JSON; jsonb refuses them), integers Python cannot print back (over 4,300 digits), nesting so
deep it raises RecursionError. Here those become per-record errors with a field path, so one such
record is quarantined and the rest of its file is kept.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# Real interview logs nest about 5 levels (record → interview → message → content → part).
MAX_NESTING = 64
# Far beyond any id, count or timestamp; Python itself refuses to print integers over 4,300 digits.
MAX_NUMBER_DIGITS = 100
_PATH_PARTS_SHOWN = 8

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NEXT_OBJECT = re.compile(r"\n\{")  # an object opening at a line's start
# A JSON string (escapes included) or one structural character; enough to follow nesting.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]')


@dataclass(frozen=True)
class _BadNumber:
    """Stands in for a number the record may not hold, so the field walk can name where it is."""

    text: str
    reason: str


def _parse_int(text: str) -> int | _BadNumber:
    digits = len(text.lstrip("-"))
    if digits > MAX_NUMBER_DIGITS:
        return _BadNumber(text, f"an integer of {digits} digits, over the limit of {MAX_NUMBER_DIGITS}")
    return int(text)


def _parse_float(text: str) -> float | _BadNumber:
    value = float(text)
    if math.isfinite(value):
        return value
    return _BadNumber(text, f"number {text[:40]} is out of range of a 64-bit float")


def _parse_constant(name: str) -> _BadNumber:
    return _BadNumber(name, f"{name} is not valid JSON (JSON has no NaN or Infinity)")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)


def strip_bom(data: bytes) -> bytes:
    """File bytes as UTF-8 without a byte-order mark; UTF-16 with a BOM (Windows tools) is re-encoded.

    Raises UnicodeDecodeError for a UTF-16 file that is not valid UTF-16.
    """
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8):]
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16").encode("utf-8")
    return data


def loads(text: str) -> tuple[Any, str | None]:
    """Parse one JSON text; returns (value, None) or (None, error) with the field named where possible."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        return None, _syntax_error(exc)
    except RecursionError:
        return None, _too_deep(_deep_path(text, 0))
    return value, field_problem(value)


def iter_array_items(text: str) -> Iterator[tuple[int, str, Any, str | None]]:
    """Yield (position, raw text, value, error) per item of a top-level JSON array, 1-based.

    Items are decoded one at a time, so an item too deep to parse costs only itself; a syntax
    error ends the array (its end cannot be found), keeping the items before it.
    """
    index = _skip_space(text, text.index("[") + 1)
    if text.startswith("]", index):
        return
    position = 0
    while True:
        position += 1
        try:
            value, end = _DECODER.raw_decode(text, index)
            error = field_problem(value)
        except json.JSONDecodeError as exc:
            yield position, text[index:], None, _syntax_error(exc)
            return
        except RecursionError:
            end = _value_end(text, index)
            value, error = None, _too_deep(_deep_path(text, index))
        yield position, text[index:end], value, error
        index = _skip_space(text, end)
        if text.startswith(",", index):
            index = _skip_space(text, index + 1)
            continue
        if text.startswith("]", index) and _skip_space(text, index + 1) == len(text):
            return
        line, column = text.count("\n", 0, index) + 1, index - text.rfind("\n", 0, index)
        yield position + 1, text[index:], None, f"invalid JSON: expected ',' or ']' at line {line} column {column}"
        return


def iter_values(text: str) -> Iterator[tuple[int, str, Any, str | None]]:
    """Yield (position, raw text, value, error) per JSON value of a text holding several one after
    another, 1-based: `jq` prints records so, each pretty-printed and opening at a line's start.

    After a syntax error, reading resumes at the next line that opens an object at its first
    character, so a broken record costs only itself.
    """
    index, position = _skip_space(text, 0), 0
    while index < len(text):
        position += 1
        try:
            value, end = _DECODER.raw_decode(text, index)
            error = field_problem(value)
        except json.JSONDecodeError as exc:
            resume = _NEXT_OBJECT.search(text, index + 1)
            end = len(text) if resume is None else resume.start() + 1
            value, error = None, _syntax_error(exc)
        except RecursionError:
            end = _value_end(text, index)
            value, error = None, _too_deep(_deep_path(text, index))
        yield position, text[index:end], value, error
        index = _skip_space(text, end)


def field_problem(value: Any) -> str | None:
    """Name the first field holding what cannot be stored: bytes that are not UTF-8, a NUL, a NaN,
    a huge integer, or nesting past MAX_NESTING levels."""
    return _walk(value, [], 1)


def _walk(value: Any, path: list[str], depth: int) -> str | None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes come in as lone surrogates (surrogateescape)
            return f"field {_format(path)}: undecodable bytes (not UTF-8)"
        # PostgreSQL text and jsonb cannot hold NUL, so such a record could never be stored.
        return f"field {_format(path)}: contains a NUL character" if "\x00" in value else None
    if isinstance(value, _BadNumber):
        return f"field {_format(path)}: {value.reason}"
    if isinstance(value, dict):
        children = ((f".{key}", item) for key, item in value.items())
    elif isinstance(value, list):
        children = ((f"[{i}]", item) for i, item in enumerate(value))
    else:
        return None
    if depth > MAX_NESTING:
        return _too_deep(path)
    for part, child in children:
        if (error := _walk(child, [*path, part], depth + 1)) is not None:
            return error
    return None


def _syntax_error(exc: json.JSONDecodeError) -> str:
    where = f"column {exc.colno}" if exc.lineno == 1 else f"line {exc.lineno} column {exc.colno}"
    return f"invalid JSON: {exc.msg} at {where}"


def _too_deep(path: list[str] | None) -> str:
    where = "$" if path is None else _format(path)
    return f"field {where}: nested deeper than {MAX_NESTING} levels"


def _format(path: list[str]) -> str:
    shown = "".join(path[:_PATH_PARTS_SHOWN])
    return "$" + shown + ("…" if len(path) > _PATH_PARTS_SHOWN else "")


def _skip_space(text: str, index: int) -> int:
    return _WHITESPACE.match(text, index).end()


def _deep_path(text: str, start: int) -> list[str] | None:
    """Path of the first container past MAX_NESTING levels, read from the tokens alone (no parsing)."""
    stack: list[list[Any]] = []  # per open container: [kind, key or index, expecting a key]
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in "[{":
            if len(stack) >= MAX_NESTING:
                return [f"[{part}]" if kind == "[" else f".{part}" for kind, part, _ in stack]
            stack.append(["[", 0, False] if token == "[" else ["{", "", True])
        elif token in "]}":
            if not stack:
                return None
            stack.pop()
            if not stack:
                return None
        elif token == ",":
            if stack and stack[-1][0] == "[":
                stack[-1][1] += 1
            elif stack:
                stack[-1][2] = True
        elif token.startswith('"') and stack and stack[-1][0] == "{" and stack[-1][2]:
            stack[-1][1], stack[-1][2] = token[1:-1], False
    return None


def _value_end(text: str, start: int) -> int:
    """Index just past the array or object starting at `start` (or the end of the text)."""
    depth = 0
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return match.end()
    return len(text)

"""Operator errors for the CLI: what an operator gets wrong is one red `error:` line and exit 2, not a
traceback (MINER_LOG_LEVEL=DEBUG logs the traceback too)."""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import typer
from rich.console import Console
from rich.markup import escape

from miner import db

logger = logging.getLogger(__name__)
console = Console(width=None if sys.stdout.isatty() else 160)


def fail(message: str) -> typer.Exit:
    """Print one red error line (markup in `message` is shown as text) and return the Exit(2) to raise."""
    console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(2)


@contextmanager
def operator_errors() -> Iterator[None]:
    """Invalid settings, an unreachable database or broker, a missing path or a file in a directory's
    place become one line; anything else (a bug) keeps its traceback."""
    from kombu.exceptions import KombuError
    from pydantic import ValidationError
    from redis.exceptions import RedisError

    from miner.components import UnknownComponentError
    from miner.llm import LLMConfigError

    try:
        yield
    except ValidationError as exc:
        problems = "; ".join(f"MINER_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise fail(f"invalid setting: {problems}") from None
    except (UnknownComponentError, LLMConfigError) as exc:
        raise fail(f"invalid setting: {exc}") from None
    except psycopg.OperationalError as exc:
        logger.debug("database error", exc_info=True)
        raise fail(f"database: {first_line(exc)}") from None
    except (KombuError, RedisError) as exc:
        logger.debug("broker error", exc_info=True)
        raise fail(f"broker (MINER_BROKER_URL): {first_line(exc)}") from None
    except OSError as exc:
        logger.debug("OS error", exc_info=True)
        raise fail(str(exc) if exc.filename is None else f"{exc.strerror}: {exc.filename}") from None


def connect_or_fail(database_url: str) -> psycopg.Connection:
    """A connection, or one line naming the (password-masked) URL that could not be used."""
    try:
        return db.connect(database_url)
    except psycopg.Error as exc:
        raise fail(f"cannot connect to the database {masked(database_url)} (MINER_DATABASE_URL): "
                   f"{first_line(exc)}") from None


def masked(url: str) -> str:
    """The URL or conninfo string with its password replaced by ***."""
    url = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def parse_job_id(text: str) -> str:
    """The job id as given, or one line saying it is not one (before a query chokes on it)."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise fail(f"{text!r} is not a job id (a UUID such as 5f0c2a3e-…; `miner jobs` lists them)") from None

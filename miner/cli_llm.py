"""`miner llm ...`: check the configured endpoint, serve a local one from a GGUF file, or list and
clear the cached replies."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from miner.settings import Settings

llm_app = typer.Typer(help="The LLM endpoint: check what it supports, serve one locally, or clear its cached "
                      "replies.", no_args_is_help=True)
cache_app = typer.Typer(help="Cached LLM replies: list them, or drop stale or invalid ones so the next run asks "
                        "again.", no_args_is_help=True)
llm_app.add_typer(cache_app, name="cache")
console = Console()


@llm_app.command("check")
def llm_check(as_json: bool = typer.Option(False, "--json", help="print the result as JSON")) -> None:
    """Try the configured endpoint (MINER_LLM_BASE_URL, MINER_LLM_MODEL) in each request mode: what
    it supports, a sample reply and its latency; remember the best mode for later jobs.

    Example: MINER_LLM_BASE_URL=http://127.0.0.1:8077/v1 MINER_LLM_MODEL=gemma-3-270m miner llm check
    """
    from miner import components, repository_endpoints
    from miner.cli import services
    from miner.llm import endpoint_url
    from miner.llm_check import best_mode, check_endpoint, refused_setting

    settings = Settings()
    try:
        client = components.llm_client_from_settings(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if client is None:
        console.print("[red]MINER_LLM_BASE_URL is not set[/red]: miner labels themes with keywords only.")
        raise typer.Exit(1)
    checks = check_endpoint(client, settings.llm_model, max_tokens=settings.llm_max_tokens)
    mode = best_mode(checks)
    if mode is not None:
        with services() as svc:
            detail = "; ".join(f"{c.mode}: {c.error}" for c in checks if c.mode != mode and c.error)[:1000]
            repository_endpoints.save_endpoint_mode(svc.conn, endpoint_url(client), settings.llm_model, mode,
                                                    detail or None)
            svc.conn.commit()
    if as_json:
        print(json.dumps({"base_url": settings.llm_base_url, "model": settings.llm_model, "mode": mode,
                          "modes": [c.__dict__ for c in checks]}, indent=2))
        raise typer.Exit(0 if mode else 1)
    table = Table(title=f"{settings.llm_base_url}  model {settings.llm_model}")
    for column in ("mode", "accepted", "valid reply", "seconds", "tokens in/out", "error"):
        table.add_column(column)
    for c in checks:
        table.add_row(c.mode, "yes" if c.accepted else "no", "yes" if c.valid else "no", f"{c.seconds:.2f}",
                      f"{c.prompt_tokens}/{c.completion_tokens}", (c.error or "")[:120])
    console.print(table)
    chosen = next((c for c in checks if c.mode == mode), None)
    if chosen is None and (setting := refused_setting(checks)) is not None:
        value = {"MINER_LLM_API_KEY": " (as set)" if settings.llm_api_key else " (unset)",
                 "MINER_LLM_TIMEOUT": f"={settings.llm_timeout:g} s",
                 "MINER_LLM_MODEL": f"={settings.llm_model}",
                 "MINER_LLM_BASE_URL": f"={settings.llm_base_url}"}[setting]
        console.print(f"error: check {setting}{value}: {checks[0].error}", markup=False, highlight=False,
                      soft_wrap=True)
        raise typer.Exit(1)
    if chosen is None:
        console.print("[red]The endpoint took no request mode[/red]; jobs will keep extractive labels.")
        raise typer.Exit(1)
    console.print(f"Jobs will use [bold]{mode}[/bold] (remembered for this base URL + model).")
    console.print(f"Sample reply ({chosen.seconds:.2f} s):", markup=False)
    console.print(chosen.content or "", markup=False, highlight=False)


# Per-request timeout printed for a local CPU server (the suite's real-model test runs with 900).
LOCAL_TIMEOUT_SECONDS = 900


# The docstring is rich markup in --help: `\[` keeps `[llm-local]` from being read as a style tag.
@llm_app.command("serve")
def llm_serve(
    gguf: Optional[Path] = typer.Option(None, help="GGUF model file; default: the small packaged model"),
    port: int = typer.Option(8077, help="port to listen on (127.0.0.1)"),
    threads: Optional[int] = typer.Option(None, help="CPU threads; default: all cores"),
    parallel: int = typer.Option(2, help="requests decoded together"),
) -> None:
    """Serve a local OpenAI-compatible endpoint from a GGUF file with llama.cpp (xllamacpp) until
    Ctrl-C; prints the MINER_LLM_* settings to use. Needs `pip install 'miner\\[llm-local]'`.

    Example: miner llm serve --port 8077 --threads 2
    """
    from miner.llm_local import NotInstalledError, serve

    try:
        local = serve(gguf, port=port, threads=threads, parallel=parallel)
    except NotInstalledError as exc:
        console.print(f"[red]xllamacpp is not installed[/red]: {escape(str(exc))}", highlight=False)
        raise typer.Exit(1) from None
    except (FileNotFoundError, TimeoutError) as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(1) from None
    print(f"serving {local.gguf} on {local.base_url}; set:", flush=True)
    print(f"export MINER_LLM_BASE_URL={local.base_url}", flush=True)
    print(f"export MINER_LLM_MODEL={local.model}", flush=True)
    # A job's defaults (4 requests in flight, 60 s each) suit a hosted API: here requests beyond the
    # server's decoding slots wait in its queue, and a CPU model's reply of MINER_LLM_MAX_TOKENS takes minutes.
    print(f"export MINER_LLM_MAX_CONCURRENCY={parallel}", flush=True)
    print(f"export MINER_LLM_TIMEOUT={LOCAL_TIMEOUT_SECONDS}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    # Exit without llama.cpp's teardown: it waits, holding the GIL, for the replies of requests in flight,
    # which its stopped loop never gives, so the process hung until every client timed out. Nothing
    # of the server needs keeping; its clients see the connection close and retry or fail.
    sys.stdout.flush()
    os._exit(0)


def _print_cache_groups(groups: list[dict], title: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps(groups, indent=2))
        return
    table = Table(title=title)
    for column in ("base URL", "model", "valid", "replies"):
        table.add_column(column)
    for g in groups:
        table.add_row(g["base_url"] or "(cached before migration 021: no longer used)", g["model"],
                      {True: "yes", False: "no", None: "?"}[g["valid"]], str(g["replies"]))
    console.print(table)


_MODEL = typer.Option(None, "--model", help="only replies of this model name")
_BASE_URL = typer.Option(None, "--base-url", help="only replies of this endpoint (as in MINER_LLM_BASE_URL)")
_INVALID = typer.Option(False, "--invalid-only", help="only replies that failed validation (JSON schema or checks)")
_JSON = typer.Option(False, "--json", help="print the groups as JSON")


@cache_app.command("list")
def cache_list(model: Optional[str] = _MODEL, base_url: Optional[str] = _BASE_URL, invalid_only: bool = _INVALID,
               as_json: bool = _JSON) -> None:
    """Count the cached replies per endpoint (base URL), model and validity.

    Example: miner llm cache list --model qwen2.5:7b-instruct
    """
    from miner import repository_endpoints
    from miner.cli import services
    from miner.llm_endpoint import normalise_base_url

    with services(read_only=True) as svc:
        groups = repository_endpoints.llm_cache_groups(
            svc.conn, model, normalise_base_url(base_url) if base_url else None, invalid_only)
    total = sum(g["replies"] for g in groups)
    _print_cache_groups(groups, f"{total} cached replies", as_json)


@cache_app.command("clear")
def cache_clear(model: Optional[str] = _MODEL, base_url: Optional[str] = _BASE_URL, invalid_only: bool = _INVALID,
                as_json: bool = _JSON) -> None:
    """Drop cached replies (all, or those matching the options) so the next run asks the endpoint
    again, and show what was removed. The ledger (llm_calls, llm_cost) keeps its rows.

    Example: miner llm cache clear --model qwen2.5:7b-instruct --invalid-only
    """
    from miner import repository_endpoints
    from miner.cli import services
    from miner.llm_endpoint import normalise_base_url

    with services() as svc:
        removed = repository_endpoints.delete_llm_cache(
            svc.conn, model, normalise_base_url(base_url) if base_url else None, invalid_only)
        svc.conn.commit()
    total = sum(g["replies"] for g in removed)
    _print_cache_groups(removed, f"{total} cached replies removed", as_json)

"""The `miner` command line: each command builds settings, opens the connection, calls the library."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
import threading
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from miner import db, repository, repository_jobs, repository_reporting
from miner.cli_errors import connect_or_fail, fail, first_line, operator_errors, parse_job_id
from miner.cli_llm import llm_app
from miner.embedded import EmbeddedServers, resolve_urls
from miner.settings import Settings

app = typer.Typer(help="Mine interview logs into per-model opinion themes you query with SQL.",
                  no_args_is_help=True, add_completion=False)
jobs_app = typer.Typer(help="List analysis jobs, or show one.", invoke_without_command=True)
db_app = typer.Typer(help="Database chores: migrations, URL, psql shell.", no_args_is_help=True)
eval_app = typer.Typer(help="Measure the quality of clusters and ratings.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
app.add_typer(db_app, name="db")
app.add_typer(eval_app, name="eval")
app.add_typer(llm_app, name="llm")
# Piped output is read by scripts and people alike: wide enough that ids are never cut.
console = Console(width=None if sys.stdout.isatty() else 160)


class Services:
    """Resolved URLs and an open, migrated connection for one command."""

    def __init__(self, settings: Settings, database_url: str, broker_url: str | None,
                 servers: EmbeddedServers, conn):
        self.settings, self.database_url, self.broker_url = settings, database_url, broker_url
        self.servers, self.conn = servers, conn


def _log_level() -> str:
    """MINER_LOG_LEVEL in any letter case ("debug" too); an unknown level is an invalid setting, not a traceback."""
    level = os.environ.get("MINER_LOG_LEVEL", "").strip().upper() or "WARNING"
    if not isinstance(logging.getLevelName(level), int):
        raise fail(f"invalid setting: MINER_LOG_LEVEL: {level!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


@contextmanager
def services(need_broker: bool = False, read_only: bool = False, needs_schema: bool = True) -> Iterator[Services]:
    """Settings, URLs and a connection. Commands that write migrate first (a database they create
    starts with K = MINER_MIN_INTERVIEWS_PER_CELL); read-only ones never migrate, and stop with a
    clear line when the schema is behind (unless they don't read it: `needs_schema=False`)."""
    with operator_errors():
        settings = Settings()
        logging.basicConfig(level=_log_level())
        database_url, broker_url, servers = resolve_urls(settings.database_url, settings.broker_url,
                                                         settings.home, need_broker=need_broker)
        with connect_or_fail(database_url) as conn:
            if not read_only:
                repository_reporting.set_initial_threshold(conn, db.migrate(conn), settings.min_interviews_per_cell)
                conn.commit()
            elif needs_schema and (pending := db.pending_migrations(conn)):
                raise fail(f"the database schema is behind ({len(pending)} pending migration(s): "
                           f"{', '.join(p.name for p in pending)}); run `miner db migrate` first")
            yield Services(settings, database_url, broker_url, servers, conn)


@app.command()
def ingest(
    paths: list[Path] = typer.Argument(..., help=".json / .jsonl files or directories of them"),
    study: str = typer.Option(..., "--study", help="study name the interviews belong to"),
    as_json: bool = typer.Option(False, "--json", help="print the summary as JSON"),
) -> None:
    """Validate interview logs and store them; broken records go to quarantine.

    Exits 1 when any record was quarantined or the input held no record.

    Example: miner ingest logs/ --study pilot-2026
    """
    from miner.ingest import ingest_files
    from miner.store import store_ingest

    if not study.strip():  # `--study "$STUDY"` with STUDY unset would file the interviews under ''
        raise fail("--study is empty: name the study the interviews belong to")
    with services() as svc:
        result = ingest_files(paths, study, svc.settings.max_record_bytes)
        summary = store_ingest(svc.conn, study, result)
    if result.skipped:  # on stderr, so --json output stays one JSON document
        shown = ", ".join(result.skipped[:5]) + (", …" if len(result.skipped) > 5 else "")
        Console(stderr=True).print(f"skipped {len(result.skipped)} files that are hidden or not .json/.jsonl/.ndjson: "
                                   f"{escape(shown)}", highlight=False, soft_wrap=True)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        for r in summary.rejected:  # file names and errors quote the input: print them as text, not markup
            console.print(f"[yellow]quarantined[/yellow] {escape(r.source_file)}: {escape(r.error)}",
                          highlight=False, soft_wrap=True)
        console.print(f"stored {summary.stored}, duplicates {summary.duplicates}, "
                      f"quarantined {summary.quarantined}")
    if summary.quarantined or summary.stored + summary.duplicates == 0:
        if summary.stored + summary.duplicates + summary.quarantined == 0 and not as_json:
            console.print("[red]no record found in the input[/red]")
        raise typer.Exit(1)


@app.command()
def analyze(
    study: str = typer.Option(..., "--study", help="study to analyse"),
    wait: bool = typer.Option(False, "--wait", help="follow the job's progress until it ends"),
    token_budget: Optional[int] = typer.Option(
        None, "--token-budget", min=0, help="LLM tokens the job may spend (default MINER_LLM_TOKEN_BUDGET); "
        "past it, themes keep extractive labels"),
    include_low_quality: bool = typer.Option(
        False, "--include-low-quality", help="keep interviews the quality filter flags in the statistics"),
    correction: str = typer.Option("bh", "--correction", help="multiple-testing correction of theme "
                                   "prevalence tests: bh (Benjamini-Hochberg) or holm"),
) -> None:
    """Queue an analysis job for a study on the Celery workers and print its id.

    Themes get LLM labels when MINER_LLM_BASE_URL is set on the workers, extractive ones otherwise.

    Example: miner analyze --study pilot-2026 --token-budget 200000 --wait
    """
    with services(need_broker=True) as svc:
        if repository.count_interviews(svc.conn, study) == 0:
            raise fail(f"study {study!r} has no interviews; run `miner ingest` first")
        budget = token_budget if token_budget is not None else svc.settings.llm_token_budget
        if correction not in ("bh", "holm"):
            raise fail(f"--correction must be bh or holm, not {correction!r}")
        params = {"correction": correction, "include_low_quality": include_low_quality}
        if budget is not None:
            params["token_budget"] = budget
        job_id = repository_jobs.create_job(svc.conn, study, params=params)
        svc.conn.commit()  # the worker must find the row
        typer.echo(job_id)  # before enqueueing: whatever happens next, the operator has the id
        enqueue_or_fail(svc, job_id)
        if wait:
            status = wait_for_job(svc.conn, job_id, svc)
            raise typer.Exit(0 if status == "succeeded" else 1)


def enqueue_or_fail(svc: Services, job_id: str) -> None:
    """Send the job to the broker; if it is unreachable, fail the job with the reason and say how to retry."""
    from kombu.exceptions import KombuError
    from redis.exceptions import RedisError

    from workers.queue import enqueue_analysis

    try:
        enqueue_analysis(svc.broker_url, svc.settings.queue, job_id)
    except (KombuError, RedisError, OSError) as exc:
        reason = f"could not be queued, the broker is unreachable: {first_line(exc)}"
        repository_jobs.update_job(svc.conn, job_id, status="failed", error=reason)
        svc.conn.commit()
        raise fail(f"job {job_id} {reason} (MINER_BROKER_URL); once it is up: miner jobs retry {job_id}") from None


# How often `--wait` asks the broker whether any worker consumes the queue while the job waits in it.
WORKER_CHECK_SECONDS = 30.0


def wait_for_job(conn, job_id: str, svc: Services | None = None, poll_seconds: float = 0.5) -> str:
    """Show a progress bar fed from the job's row until the job ends; returns its status.

    With `svc`, while the job is queued it checks that some worker consumes the queue and says so when
    none does; it keeps waiting (a worker started later picks the job up). Ctrl-C stops waiting only.
    """
    next_check, warned, check = 0.0, False, None
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                      TimeElapsedColumn(), console=console, transient=False) as bar:
            task = bar.add_task("queued", total=1.0)
            while True:
                conn.rollback()  # a fresh snapshot each poll
                job = repository_jobs.get_job(conn, job_id)
                bar.update(task, completed=job.progress, description=f"{job.status}: {job.stage or '-'}")
                if job.status in ("succeeded", "failed", "cancelled"):
                    break
                if check is not None and check.done():
                    warned, check = _warn_without_workers(svc, warned, check.result()), None
                if svc is not None and check is None and job.status == "queued" and time.monotonic() >= next_check:
                    # Asked in a thread of its own: the broker client can sit on Ctrl-C, the main thread can't.
                    check = _in_daemon_thread(_queue_has_consumers, svc)
                    next_check = time.monotonic() + WORKER_CHECK_SECONDS
                time.sleep(poll_seconds)
    except KeyboardInterrupt:
        console.print(f"stopped waiting; job {job_id} goes on (miner jobs show {job_id})", highlight=False)
        raise typer.Exit(130) from None
    if job.status != "succeeded":
        reason = f": {escape(job.error)}" if job.error else ""
        console.print(f"[red]job {job_id} {job.status}[/red]{reason}", highlight=False)
    return job.status


def _in_daemon_thread(check, svc: Services) -> Future:
    """Run a check in a daemon thread: on Ctrl-C the CLI exits at once, not after a broker call in flight
    (a ThreadPoolExecutor's threads are joined at interpreter exit)."""
    future: Future = Future()
    threading.Thread(target=lambda: future.set_result(check(svc)), name="worker-check", daemon=True).start()
    return future


def _queue_has_consumers(svc: Services) -> bool | None:
    """Whether any worker consumes the queue; None when the broker could not say."""
    from workers.queue import queue_consumers

    try:
        return bool(queue_consumers(svc.broker_url, svc.settings.queue, timeout=2.0))
    except Exception:  # noqa: BLE001 — a failed check must not end the wait; the job row is the truth
        logging.getLogger(__name__).debug("worker check failed", exc_info=True)
        return None


def _warn_without_workers(svc: Services, warned: bool, consumers: bool | None) -> bool:
    """Say once that no worker consumes the queue (again after one was seen); returns whether warned."""
    if consumers is None:
        return warned
    if consumers:
        return False
    if not warned:
        console.print(f"[yellow]no worker is consuming queue {escape(svc.settings.queue)}[/yellow]; start one "
                      f"with `celery -A workers.app worker` (MINER_QUEUE={escape(svc.settings.queue)}); "
                      "still waiting, Ctrl-C stops waiting and leaves the job queued",
                      highlight=False, soft_wrap=True)
    return True


@jobs_app.callback()
def jobs(ctx: typer.Context, study: Optional[str] = typer.Option(None, help="only this study")) -> None:
    """List analysis jobs with status and progress.

    Example: miner jobs --study pilot-2026
    """
    if ctx.invoked_subcommand is not None:
        return
    with services(read_only=True) as svc:
        rows = repository_jobs.list_jobs(svc.conn, study)
    table = Table("study", "kind", "status", "stage", "progress", "created")
    table.add_column("job", no_wrap=True, min_width=36)  # the full id, for `miner jobs show`
    for j in rows:
        table.add_row(j.study, j.kind, j.status, j.stage or "", f"{j.progress:.0%}",
                      f"{j.created_at:%Y-%m-%d %H:%M}", j.job_id)
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str) -> None:
    """Show one job: status, progress, counts, error, and its LLM cost (calls, tokens, cache hits).

    Example: miner jobs show 5f0c…
    """
    job_id = parse_job_id(job_id)
    with services(read_only=True) as svc:
        job = repository_jobs.get_job(svc.conn, job_id)
        cost = [] if job is None else repository.llm_cost(svc.conn, job_id)
        errors = [] if job is None else repository.llm_errors(svc.conn, job_id)
    if job is None:
        raise fail(f"no job {job_id}")
    for key in ("job_id", "study", "kind", "status", "stage", "progress", "created_at", "finished_at", "error"):
        console.print(f"{key:>12}: {getattr(job, key)}", highlight=False)
    console.print(f"{'counts':>12}: {json.dumps(job.counts)}", highlight=False)
    print_llm_cost(job, cost)
    # A wrong key or model costs the job its LLM labels, not the job: say why, not only how many.
    for error, calls in errors:
        console.print(f"{'llm errors':>12}: {calls}× {error[:300]}", markup=False, highlight=False)


def print_llm_cost(job, rows: list[dict]) -> None:
    """The job's LLM ledger summed per purpose, then the total and the budget."""
    if not rows:
        ended = job.status in ("succeeded", "failed", "cancelled")
        console.print(f"{'llm cost':>12}: " + ("no LLM calls (extractive labels)" if ended
                                                else "no LLM calls recorded yet"), highlight=False)
        return
    columns = ("calls", "requests", "cache_hits", "prompt_tokens", "completion_tokens", "billed_tokens",
               "ok", "invalid", "failed", "skipped")
    table = Table("purpose", "model", *columns, "seconds", title="LLM cost")
    for r in rows:
        table.add_row(r["purpose"], r["model"], *[str(r[c]) for c in columns], f"{r['latency_ms'] / 1000:.1f}")
    total = {c: sum(r[c] for r in rows) for c in columns}
    table.add_row("total", "", *[str(total[c]) for c in columns], f"{sum(r['latency_ms'] for r in rows) / 1000:.1f}")
    console.print(table)
    budget = job.params.get("token_budget", job.counts.get("llm_token_budget"))  # 0 is a budget too
    exhausted = job.counts.get("llm_budget_exhausted")
    console.print(f"{'tokens':>12}: {total['billed_tokens']} billed"
                  + (f" of a {budget} budget" if budget is not None else " (no budget)")
                  + (" — budget reached, remaining themes kept extractive labels" if exhausted else ""),
                  highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a queued or running job: its remaining steps do nothing and nothing is published.

    Example: miner jobs cancel 5f0c…
    """
    from miner.schedule import JobStateError, cancel_job

    job_id = parse_job_id(job_id)
    with services() as svc:
        try:
            cancel_job(svc.conn, job_id)
        except (LookupError, JobStateError) as exc:
            raise fail(str(exc)) from None
    console.print(f"job {job_id} cancelled")


@jobs_app.command("retry")
def jobs_retry(
    job_id: str,
    wait: bool = typer.Option(False, "--wait", help="follow the job's progress until it ends"),
) -> None:
    """Resume a failed, cancelled or stalled job from its first unfinished step.

    Example: miner jobs retry 5f0c… --wait
    """
    from miner.schedule import JobStateError, reopen_job

    job_id = parse_job_id(job_id)
    with services(need_broker=True) as svc:
        try:
            step = reopen_job(svc.conn, job_id)
        except (LookupError, JobStateError) as exc:
            raise fail(str(exc)) from None
        enqueue_or_fail(svc, job_id)
        console.print(f"job {job_id} resumes at step {step}")
        if wait and wait_for_job(svc.conn, job_id, svc) != "succeeded":
            raise typer.Exit(1)


@app.command()
def nightly(
    force: bool = typer.Option(False, "--force", help="queue every study, not only those with new interviews"),
) -> None:
    """Run the nightly aggregation now: a nightly job per study with new interviews.

    It is what the beat schedule runs each night. Example: miner nightly
    """
    from miner.schedule import create_nightly_jobs
    from workers.queue import enqueue_analysis

    with services(need_broker=True) as svc:
        created = create_nightly_jobs(svc.conn, force=force)
        for study, job_id in created:
            enqueue_analysis(svc.broker_url, svc.settings.queue, job_id)
            typer.echo(f"{study}\t{job_id}")
    if not created:
        console.print("no study has new interviews")


@app.command()
def schedule() -> None:
    """Show the beat schedule and the last nightly result per study.

    Example: miner schedule
    """
    from miner.repository_jobs import last_nightly

    with services(read_only=True) as svc:
        rows = last_nightly(svc.conn)
        console.print(f"nightly aggregation: every day at {svc.settings.nightly_at} UTC (MINER_NIGHTLY_AT); "
                      f"stalled-job watchdog: every {max(30, svc.settings.stall_seconds // 3)} s "
                      f"(MINER_STALL_SECONDS={svc.settings.stall_seconds})")
    table = Table("study", "last nightly job", "status", "started", "finished", "new answers", "mode", "themes")
    for r in rows:
        counts = r["counts"] or {}
        table.add_row(r["study"], str(r["job_id"]), r["status"], f"{r['created_at']:%Y-%m-%d %H:%M}",
                      "" if r["finished_at"] is None else f"{r['finished_at']:%Y-%m-%d %H:%M}",
                      # new_units counts opinion units (several per answer); older jobs lack new_answers and
                      # their new_units counted answers
                      str(counts.get("new_answers", counts.get("new_units", ""))), str(counts.get("mode", "")),
                      str(counts.get("themes", "")))
    console.print(table if rows else "no nightly run yet")


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="JSONL file to write"),
    interviews: int = typer.Option(300, "--interviews", min=1, help="how many interviews"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed gives the same file"),
) -> None:
    """Write a synthetic sample study (3+ models, planted opinion themes) as interview-log JSONL.

    Example: miner sample --out sample.jsonl --interviews 500 --seed 1
    """
    from miner.sample import generate_sample, write_jsonl

    with operator_errors():
        count = write_jsonl(generate_sample(interviews, seed=seed), out)
    console.print(f"wrote {count} interviews to {out}")


def _cell(row: dict | None) -> str:
    """A theme × model cell as `share (answers)`; a cell under the privacy threshold K says so."""
    if row is None:
        return ""
    if row.get("share") is None:
        return "suppressed"
    return f"{row['share']:.1%} ({row['answers']})"


def print_theme_table(rows: list[dict], title: str) -> None:
    models = sorted({r["session_model"] for r in rows})
    table = Table("theme", "label", "stance", *[f"{m}\nshare (answers)" for m in models], title=title)
    by_theme: dict[int, dict] = {}
    for r in rows:
        by_theme.setdefault(r["theme_id"], {"label": r["label"], "stance": r.get("stance")})[r["session_model"]] = r
    for theme_id, cells in by_theme.items():
        table.add_row(str(theme_id), cells["label"] or "", cells["stance"] or "",
                      *[_cell(cells.get(m)) for m in models])
    console.print(table)


@app.command()
def demo(
    interviews: int = typer.Option(300, "--interviews", min=1, help="size of the sample study"),
    study: str = typer.Option("demo", "--study", help="study name to use"),
) -> None:
    """Run the whole service on a sample study: embedded servers, a real worker, per-model themes.

    Example: miner demo
    """
    from miner.ingest import ingest_files
    from miner.sample import generate_sample, write_jsonl
    from miner.store import store_ingest
    from workers.queue import enqueue_analysis

    with services(need_broker=True) as svc:
        sample_path = svc.settings.home / f"{study}-sample.jsonl"
        svc.settings.home.mkdir(parents=True, exist_ok=True)
        write_jsonl(generate_sample(interviews, seed=0), sample_path)
        summary = store_ingest(svc.conn, study, ingest_files([sample_path], study, svc.settings.max_record_bytes))
        console.print(f"ingested {sample_path}: stored {summary.stored}, duplicates {summary.duplicates}, "
                      f"quarantined {summary.quarantined}")
        with worker_process(svc) as log_path:
            job_id = repository_jobs.create_job(svc.conn, study)
            svc.conn.commit()
            enqueue_analysis(svc.broker_url, svc.settings.queue, job_id)
            console.print(f"queued job {job_id}; worker log: {log_path}")
            if wait_for_job(svc.conn, job_id) != "succeeded":
                raise typer.Exit(1)
        print_theme_table(repository.theme_by_model(svc.conn, study), f"Themes by model — study {study!r}")
    console.print(
        "\nQuery the results with SQL:\n"
        f"  miner db psql -c \"SELECT * FROM theme_by_model WHERE study = '{study}' ORDER BY theme_id\"\n"
        "or open a psql shell with `miner db psql` (views: theme_by_model, theme_summary, theme_answers)."
    )


@app.command()
def report(
    study: str = typer.Option(..., "--study", help="study to report on"),
    out: Path = typer.Option(Path("report.html"), "--out", help="HTML file to write"),
) -> None:
    """Write a study's report: one self-contained HTML file (charts inlined; opens offline, no CDN).

    It reads the reporting views, so suppressed cells stay suppressed. Example: miner report --study pilot-2026 --out report.html
    """
    from dataclasses import replace

    from miner import repository_tree
    from miner.report import QUOTES_PER_CARD, NothingToReportError, quoted_interviews, render_report

    with services(read_only=True) as svc:
        data = repository_reporting.read_report_data(svc.conn, study, evidence_per_cell=2 * QUOTES_PER_CARD)  # spares for duplicates
        # The explorer opens each quoted interview: only those, scrubbed when rendered.
        data = replace(data, transcripts=repository_tree.read_transcripts(svc.conn, quoted_interviews(data)))
    try:
        html = render_report(data)
    except NothingToReportError as exc:
        raise fail(str(exc)) from None
    with operator_errors():
        out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({len(html) / 1e6:.1f} MB)")


@app.command()
def export(
    study: str = typer.Option(..., "--study", help="study to export"),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or json"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory to write (default ./<study>-export, "
                                       "the study name made a safe file name)"),
) -> None:
    """Export a study's reporting views, one file per view plus manifest.json, for pandas or a BI tool.

    Example: miner export --study pilot-2026 --format parquet --out exports/
    """
    from miner.export import ExportFormatError, default_export_dir, export_study

    out = out or default_export_dir(study)
    if out.exists() and not out.is_dir():
        raise fail(f"--out {out} is a file; export writes a directory (one file per view)")
    with services(read_only=True) as svc:
        data = repository_reporting.read_report_data(svc.conn, study)
        contract = repository_reporting.view_contract(svc.conn)
    if not data.tables.get("studies"):
        raise fail(f"study {study!r} has no published job; run `miner analyze --study {study}` first")
    try:
        with operator_errors():
            files = export_study(data, fmt, out, contract)
    except ExportFormatError as exc:
        raise fail(str(exc)) from None
    console.print(f"wrote {len(files)} files to {files[0].parent}")


@contextmanager
def worker_process(svc: Services) -> Iterator[Path]:
    """A real Celery worker in a child process, pointed at this command's servers."""
    log_path = svc.settings.home / "worker.log"
    env = {**os.environ, "MINER_DATABASE_URL": svc.database_url, "MINER_BROKER_URL": svc.broker_url}
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool", "solo",
             "--loglevel", "INFO", "--hostname", f"demo-{os.getpid()}@%h"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@eval_app.command("clusters")
def eval_clusters(
    csv_path: Path = typer.Argument(..., help="CSV of labelled short texts", exists=True, dir_okay=False),
    text_column: str = typer.Option("text", "--text-column"),
    label_column: str = typer.Option("category", "--label-column"),
    seed: Optional[int] = typer.Option(None, "--seed", help="clustering seed (default MINER_SEED)"),
    zipf: Optional[int] = typer.Option(None, "--zipf", metavar="SEED",
                                       help="score an imbalanced subsample instead: class sizes ∝ 1/rank, "
                                            "classes ranked and texts drawn with this seed"),
    as_json: bool = typer.Option(False, "--json", help="print the scores as JSON"),
) -> None:
    """Score the analysis job's own clustering path against gold labels: NMI, ARI, accuracy, outliers.

    Outliers count as one cluster in the scores. Example: miner eval clusters banking77_test.csv --json
    (add --zipf 0 for its Zipf-subsampled version).
    """
    from miner.components import Components
    from miner.eval_clusters import LabelledDataError, evaluate_clusters, read_labelled_csv, zipf_subsample

    try:
        data = read_labelled_csv(csv_path, text_column, label_column)
    except LabelledDataError as exc:
        raise fail(str(exc)) from None
    if zipf is not None:
        data = zipf_subsample(data, zipf)
    with operator_errors():
        settings = Settings() if seed is None else Settings(seed=seed)
        parts = Components.from_settings(settings, llm_client=None)  # clustering only: no LLM
    scores = evaluate_clusters(data, parts.embedder, parts.clusterer)
    if as_json:
        typer.echo(json.dumps(scores))
        return
    table = Table("texts", "gold labels", *scores.keys())
    table.add_row(str(len(data.texts)), str(len(set(data.labels))),
                  *[f"{v:.3f}" if isinstance(v, float) else str(v) for v in scores.values()])
    console.print(table)


@eval_app.command("opinions")
def eval_opinions(
    csv_path: Path = typer.Argument(..., help="CSV of texts with gold category:polarity pairs", exists=True,
                                    dir_okay=False),
    text_column: str = typer.Option("text", "--text-column"),
    opinions_column: str = typer.Option("opinions", "--opinions-column",
                                        help="gold pairs, category:polarity joined by ';'"),
    seed: Optional[int] = typer.Option(None, "--seed", help="clustering seed (default MINER_SEED)"),
    stance_train: Optional[Path] = typer.Option(
        None, "--stance-train", exists=True, dir_okay=False,
        help="CSV of labelled texts (same columns) to fit a supervised stance head on first, instead of the "
             "default domain-general stance"),
    as_json: bool = typer.Option(False, "--json", help="print the scores as one JSON line"),
) -> None:
    """Score opinion units → embed → cluster → stance against gold (category, polarity) pairs.

    Themes are mapped to the gold category they co-occur with most. Example:
    miner eval opinions mams_acsa_test.csv --json
    With --stance-train (e.g. mams_acsa_train.csv) the stance is a head fitted on that file's labels
    (supervised on the domain; the default stance is fitted on nothing).
    """
    from miner.components import embedder_from_settings
    from miner.eval_opinions import (OpinionDataError, evaluate_opinions, fit_stance, opinion_clusterer,
                                     read_opinion_csv)
    from miner.stance import default_stance

    try:
        data = read_opinion_csv(csv_path, text_column, opinions_column)
        train = None if stance_train is None else read_opinion_csv(stance_train, text_column, opinions_column)
    except OpinionDataError as exc:
        raise fail(str(exc)) from None
    with operator_errors():
        settings = Settings() if seed is None else Settings(seed=seed)
        embedder = embedder_from_settings(settings)
    if train is None:
        stance = default_stance(embedder)
    else:
        try:
            stance = fit_stance(train, embedder, opinion_clusterer(settings.seed))
        except OpinionDataError as exc:
            raise fail(f"{stance_train}: {exc}") from None
    scores = evaluate_opinions(data, embedder, opinion_clusterer(settings.seed), stance)
    if as_json:
        typer.echo(json.dumps(scores))
        return
    table = Table("texts", *scores.keys())
    table.add_row(str(len(data.texts)), *[f"{v:.3f}" if isinstance(v, float) else str(v) for v in scores.values()])
    console.print(table)


@eval_app.command("ratings")
def eval_ratings(
    study: str = typer.Option(..., "--study", help="study whose inferred ratings to measure"),
    gold: Optional[Path] = typer.Option(None, "--gold", help="CSV of people's ratings with an `id` column",
                                        exists=True, dir_okay=False),
    gold_column: str = typer.Option("overall", "--gold-column", help="the CSV column holding the rating"),
    dimension: str = typer.Option("overall", "--dimension", help="the dimension compared with --gold-column"),
    offline: bool = typer.Option(False, "--offline", help="use the offline estimator even if an LLM is configured"),
    as_json: bool = typer.Option(False, "--json", help="print the figures as JSON"),
) -> None:
    """Measure inferred ratings against people's own: Spearman per dimension, n, Kendall's tau of the model ranking.

    Without --gold the study's explicit ratings are the target, hidden from the estimator. With
    --gold the CSV's `id` column is joined to each log's own `id`.
    Example: miner eval ratings --study halie --gold halie_crossword_ratings.csv --gold-column helpfulness
    """
    from miner.components import Components
    from miner.eval_ratings import GoldDataError, evaluate_ratings, read_gold

    with services() as svc:
        parts = Components.from_settings(svc.settings, **({"llm_client": None} if offline else {}))
        try:
            gold_values = None if gold is None else read_gold(gold, gold_column)
            result = evaluate_ratings(svc.conn, study, parts.embedder, gold_values, dimension,
                                      llm=_rating_llm(svc, parts), scrub=svc.settings.llm_scrub)
        except GoldDataError as exc:
            raise fail(str(exc)) from None
        svc.conn.commit()  # keep the embeddings it computed
    if as_json:
        typer.echo(json.dumps(result.as_json()))
        return
    console.print(f"{result.estimator} against {result.target}", highlight=False)
    table = Table("dimension", "spearman", "n")
    for name, figures in result.dimensions.items():
        table.add_row(name, "-" if figures["spearman"] is None else f"{figures['spearman']:.3f}", str(figures["n"]))
    console.print(table)
    models = Table("session model", "inferred mean", "people's mean", "n")
    for model, figures in sorted(result.models.items(), key=lambda kv: -kv[1]["gold"]):
        models.add_row(model, f"{figures['inferred']:.2f}", f"{figures['gold']:.2f}", str(figures["n"]))
    console.print(models)
    console.print(f"Kendall's tau of the model ranking: {result.kendall_tau}", highlight=False)


def _rating_llm(svc: Services, parts):
    """A miner.llm.LLM for the configured endpoint, or None (offline estimator)."""
    if parts.llm_client is None:
        return None
    from miner.llm import LLM, PostgresStore

    return LLM(parts.llm_client, parts.llm_options, PostgresStore(svc.conn, None),
               token_budget=parts.llm_options.token_budget)


@contextmanager
def _unmigrated_connection() -> Iterator:
    """A connection to the configured (or embedded) database, schema left as it is."""
    with operator_errors():
        settings = Settings()
        database_url, _, _servers = resolve_urls(settings.database_url, None, settings.home, need_broker=False)
        with connect_or_fail(database_url) as conn:
            yield conn


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations (a new database starts with K = MINER_MIN_INTERVIEWS_PER_CELL).

    Example: miner db migrate
    """
    with _unmigrated_connection() as conn:
        applied = db.migrate(conn)
        repository_reporting.set_initial_threshold(conn, applied, Settings().min_interviews_per_cell)
        conn.commit()
    console.print(f"applied {len(applied)} migration(s): {', '.join(applied) or 'none pending'}")


@db_app.command("status")
def db_status() -> None:
    """List pending migrations without applying them.

    Example: miner db status
    """
    with _unmigrated_connection() as conn:
        pending = db.pending_migrations(conn)
    console.print("pending: " + (", ".join(p.name for p in pending) or "none"))


@db_app.command("url")
def db_url() -> None:
    """Print the database URL (starting the embedded server if none is configured).

    Example: psql "$(miner db url)"  (while `miner db psql` or a worker keeps the embedded server up)
    """
    with services(read_only=True, needs_schema=False) as svc:
        typer.echo(svc.database_url)


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the miner database; extra arguments go to psql.

    Example: miner db psql -c "SELECT * FROM theme_by_model"
    """
    with services(read_only=True, needs_schema=False) as svc:
        psql = shutil.which("psql") or _bundled_psql()
        code = subprocess.call([psql, svc.database_url, *ctx.args])
    raise typer.Exit(code)


@db_app.command("set-threshold")
def db_set_threshold(k: int = typer.Argument(..., min=1, help="K: cells backed by 1..K-1 interviews are suppressed")) -> None:
    """Set the privacy threshold K of the reporting views (shown by `SELECT * FROM reporting.privacy`).

    The only command that changes K; each job records the K in force when it is published.
    Example: miner db set-threshold 10
    """
    with services() as svc:
        previous = repository_reporting.set_min_interviews_per_cell(svc.conn, k)
        svc.conn.commit()
    console.print(f"privacy threshold K = {k} (was {previous})", highlight=False)


@db_app.command("grant-reader")
def db_grant_reader(
    name: str = typer.Argument(..., help="role name (lower-case letters, digits, _)"),
    password: Optional[str] = typer.Option(None, "--password", envvar="MINER_READER_PASSWORD",
                                           help="login password (or MINER_READER_PASSWORD)"),
    statement_timeout: str = typer.Option(repository_reporting.DEFAULT_READER_TIMEOUT, "--statement-timeout",
                                          help="longest statement the role may run (e.g. 30s, 5min)"),
) -> None:
    """Create (or fix) a login role that can SELECT the reporting views and nothing else.

    No raw tables (interviews, units with unscrubbed text), no writes, no temp objects; an existing
    role loses its other memberships and privileges. Views added by later migrations are readable
    too. Example: MINER_READER_PASSWORD=... miner db grant-reader analyst
    """
    with services() as svc:
        try:
            grant = repository_reporting.grant_reader(svc.conn, name, password, statement_timeout)
        except repository_reporting.RoleNameError as exc:
            raise fail(str(exc)) from None
        svc.conn.commit()
    console.print(f"{'created' if grant.created else 'updated'} role {name}: SELECT on schema reporting only, "
                  f"read-only sessions, statement_timeout {statement_timeout} (psql -U {name}; see schemas/views.md)",
                  highlight=False)
    if grant.revoked_memberships:
        console.print(f"revoked its membership in: {', '.join(grant.revoked_memberships)}", highlight=False)
    if grant.open_databases:
        console.print(f"[yellow]warning:[/yellow] other databases still admit {name} through PUBLIC's CONNECT: "
                      f"{', '.join(grant.open_databases)}; in pg_hba.conf follow its line for this database with "
                      f"`host all {name} all reject`, or REVOKE CONNECT ... FROM PUBLIC there", highlight=False)


def _bundled_psql() -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


if __name__ == "__main__":
    app()

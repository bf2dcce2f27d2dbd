"""The `miner` command line: each command builds settings, opens the connection, calls the library."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from miner import db, repository, repository_reporting
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


@contextmanager
def services(need_broker: bool = False) -> Iterator[Services]:
    settings = Settings()
    logging.basicConfig(level=os.environ.get("MINER_LOG_LEVEL", "WARNING"))
    database_url, broker_url, servers = resolve_urls(settings.database_url, settings.broker_url,
                                                     settings.home, need_broker=need_broker)
    with db.connect(database_url) as conn:
        db.migrate(conn)
        repository_reporting.set_min_interviews_per_cell(conn, settings.min_interviews_per_cell)
        conn.commit()
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

    with services() as svc:
        try:
            result = ingest_files(paths, study, svc.settings.max_record_bytes)
        except FileNotFoundError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
        summary = store_ingest(svc.conn, study, result)
    if as_json:
        typer.echo(json.dumps(summary.as_dict()))
    else:
        for r in summary.rejected:
            console.print(f"[yellow]quarantined[/yellow] {r.source_file}: {r.error}", highlight=False, soft_wrap=True)
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
        None, "--token-budget", help="LLM tokens the job may spend (default MINER_LLM_TOKEN_BUDGET); "
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
    from workers.queue import enqueue_analysis

    with services(need_broker=True) as svc:
        if repository.count_interviews(svc.conn, study) == 0:
            console.print(f"[red]study {study!r} has no interviews; run `miner ingest` first[/red]")
            raise typer.Exit(2)
        budget = token_budget if token_budget is not None else svc.settings.llm_token_budget
        if correction not in ("bh", "holm"):
            console.print(f"[red]--correction must be bh or holm, not {correction!r}[/red]")
            raise typer.Exit(2)
        params = {"correction": correction, "include_low_quality": include_low_quality}
        if budget is not None:
            params["token_budget"] = budget
        job_id = repository.create_job(svc.conn, study, params=params)
        svc.conn.commit()  # the worker must find the row
        enqueue_analysis(svc.broker_url, svc.settings.queue, job_id)
        typer.echo(job_id)
        if wait:
            status = wait_for_job(svc.conn, job_id)
            raise typer.Exit(0 if status == "succeeded" else 1)


def wait_for_job(conn, job_id: str, poll_seconds: float = 0.5) -> str:
    """Show a progress bar fed from the job's row until the job ends; returns its status."""
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task("queued", total=1.0)
        while True:
            conn.rollback()  # a fresh snapshot each poll
            job = repository.get_job(conn, job_id)
            bar.update(task, completed=job.progress, description=f"{job.status}: {job.stage or '-'}")
            if job.status in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(poll_seconds)
    if job.status != "succeeded":
        console.print(f"[red]job {job_id} {job.status}[/red]: {job.error or ''}")
    return job.status


@jobs_app.callback()
def jobs(ctx: typer.Context, study: Optional[str] = typer.Option(None, help="only this study")) -> None:
    """List analysis jobs with status and progress.

    Example: miner jobs --study pilot-2026
    """
    if ctx.invoked_subcommand is not None:
        return
    with services() as svc:
        rows = repository.list_jobs(svc.conn, study)
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
    with services() as svc:
        job = repository.get_job(svc.conn, job_id)
        cost = [] if job is None else repository.llm_cost(svc.conn, job_id)
    if job is None:
        console.print(f"[red]no job {job_id}[/red]")
        raise typer.Exit(2)
    for key in ("job_id", "study", "kind", "status", "stage", "progress", "created_at", "finished_at", "error"):
        console.print(f"{key:>12}: {getattr(job, key)}", highlight=False)
    console.print(f"{'counts':>12}: {json.dumps(job.counts)}", highlight=False)
    print_llm_cost(job, cost)


def print_llm_cost(job, rows: list[dict]) -> None:
    """The job's LLM ledger summed per purpose, then the total and the budget."""
    if not rows:
        console.print(f"{'llm cost':>12}: no LLM calls (extractive labels)", highlight=False)
        return
    columns = ("calls", "requests", "cache_hits", "prompt_tokens", "completion_tokens", "billed_tokens",
               "ok", "invalid", "failed", "skipped")
    table = Table("purpose", "model", *columns, "seconds", title="LLM cost")
    for r in rows:
        table.add_row(r["purpose"], r["model"], *[str(r[c]) for c in columns], f"{r['latency_ms'] / 1000:.1f}")
    total = {c: sum(r[c] for r in rows) for c in columns}
    table.add_row("total", "", *[str(total[c]) for c in columns], f"{sum(r['latency_ms'] for r in rows) / 1000:.1f}")
    console.print(table)
    budget = job.params.get("token_budget") or job.counts.get("llm_token_budget")
    exhausted = job.counts.get("llm_budget_exhausted")
    console.print(f"{'tokens':>12}: {total['billed_tokens']} billed"
                  + (f" of a {budget} budget" if budget else " (no budget)")
                  + (" — budget reached, remaining themes kept extractive labels" if exhausted else ""),
                  highlight=False)


@jobs_app.command("cancel")
def jobs_cancel(job_id: str) -> None:
    """Cancel a queued or running job: its remaining steps do nothing and nothing is published.

    Example: miner jobs cancel 5f0c…
    """
    from miner.schedule import JobStateError, cancel_job

    with services() as svc:
        try:
            cancel_job(svc.conn, job_id)
        except (LookupError, JobStateError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2)
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
    from workers.queue import enqueue_analysis

    with services(need_broker=True) as svc:
        try:
            step = reopen_job(svc.conn, job_id)
        except (LookupError, JobStateError) as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2)
        enqueue_analysis(svc.broker_url, svc.settings.queue, job_id)
        console.print(f"job {job_id} resumes at step {step}")
        if wait and wait_for_job(svc.conn, job_id) != "succeeded":
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
    from miner.repository_runs import last_nightly

    with services() as svc:
        rows = last_nightly(svc.conn)
        console.print(f"nightly aggregation: every day at {svc.settings.nightly_at} UTC (MINER_NIGHTLY_AT); "
                      f"stalled-job watchdog: every {max(30, svc.settings.stall_seconds // 3)} s "
                      f"(MINER_STALL_SECONDS={svc.settings.stall_seconds})")
    table = Table("study", "last nightly job", "status", "started", "finished", "new answers", "mode", "themes")
    for r in rows:
        counts = r["counts"] or {}
        table.add_row(r["study"], str(r["job_id"]), r["status"], f"{r['created_at']:%Y-%m-%d %H:%M}",
                      "" if r["finished_at"] is None else f"{r['finished_at']:%Y-%m-%d %H:%M}",
                      str(counts.get("new_units", "")), str(counts.get("mode", "")), str(counts.get("themes", "")))
    console.print(table if rows else "no nightly run yet")


@app.command()
def sample(
    out: Path = typer.Option(..., "--out", help="JSONL file to write"),
    interviews: int = typer.Option(300, "--interviews", help="how many interviews"),
    seed: int = typer.Option(0, "--seed", help="random seed; the same seed gives the same file"),
) -> None:
    """Write a synthetic sample study (3+ models, planted opinion themes) as interview-log JSONL.

    Example: miner sample --out sample.jsonl --interviews 500 --seed 1
    """
    from miner.sample import generate_sample, write_jsonl

    count = write_jsonl(generate_sample(interviews, seed=seed), out)
    console.print(f"wrote {count} interviews to {out}")


def print_theme_table(rows: list[dict], title: str) -> None:
    models = sorted({r["session_model"] for r in rows})
    table = Table("theme", "label", *[f"{m}\nshare (answers)" for m in models], title=title)
    by_theme: dict[int, dict] = {}
    for r in rows:
        by_theme.setdefault(r["theme_id"], {"label": r["label"]})[r["session_model"]] = r
    for theme_id, cells in by_theme.items():
        table.add_row(str(theme_id), cells["label"],
                      *[f"{cells[m]['share']:.1%} ({cells[m]['answers']})" if m in cells else "" for m in models])
    console.print(table)


@app.command()
def demo(
    interviews: int = typer.Option(300, "--interviews", help="size of the sample study"),
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
            job_id = repository.create_job(svc.conn, study)
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
    from miner.report import QUOTES_PER_CARD, NothingToReportError, render_report

    with services() as svc:
        data = repository_reporting.read_report_data(svc.conn, study, evidence_per_cell=2 * QUOTES_PER_CARD)  # spares for duplicates
    try:
        html = render_report(data)
    except NothingToReportError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2)
    out.write_text(html, encoding="utf-8")
    console.print(f"wrote {out} ({len(html) / 1e6:.1f} MB)")


@app.command()
def export(
    study: str = typer.Option(..., "--study", help="study to export"),
    fmt: str = typer.Option("csv", "--format", help="csv, parquet or json"),
    out: Optional[Path] = typer.Option(None, "--out", help="directory to write (default ./<study>-export)"),
) -> None:
    """Export a study's reporting views, one file per view plus manifest.json, for pandas or a BI tool.

    Example: miner export --study pilot-2026 --format parquet --out exports/
    """
    from miner.export import ExportFormatError, export_study

    with services() as svc:
        data = repository_reporting.read_report_data(svc.conn, study)
        contract = repository_reporting.view_contract(svc.conn)
    if not data.tables.get("studies"):
        console.print(f"[red]study {study!r} has no published job; run `miner analyze --study {study}` first[/red]")
        raise typer.Exit(2)
    try:
        files = export_study(data, fmt, out or Path(f"{study}-export"), contract)
    except ExportFormatError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2)
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
    as_json: bool = typer.Option(False, "--json", help="print the scores as JSON"),
) -> None:
    """Score the analysis job's own clustering path against gold labels: NMI, ARI, accuracy, outliers.

    Outliers count as one cluster in the scores. Example: miner eval clusters banking77_test.csv --json
    """
    from miner.components import clusterer_from_settings, embedder_from_settings
    from miner.eval_clusters import evaluate_clusters, read_labelled_csv

    settings = Settings() if seed is None else Settings(seed=seed)
    data = read_labelled_csv(csv_path, text_column, label_column)
    scores = evaluate_clusters(data, embedder_from_settings(settings), clusterer_from_settings(settings))
    if as_json:
        typer.echo(json.dumps(scores))
        return
    table = Table("texts", "gold labels", *scores.keys())
    table.add_row(str(len(data.texts)), str(len(set(data.labels))),
                  *[f"{v:.3f}" if isinstance(v, float) else str(v) for v in scores.values()])
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
    from miner.components import embedder_from_settings
    from miner.eval_ratings import GoldDataError, evaluate_ratings, read_gold

    with services() as svc:
        try:
            gold_values = None if gold is None else read_gold(gold, gold_column)
            result = evaluate_ratings(svc.conn, study, embedder_from_settings(svc.settings), gold_values,
                                      dimension, llm=None if offline else _rating_llm(svc))
        except GoldDataError as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2)
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


def _rating_llm(svc: Services):
    """A miner.llm.LLM for the configured endpoint, or None (offline estimator)."""
    from miner.components import llm_client_from_settings, llm_options_from_settings

    client = llm_client_from_settings(svc.settings)
    if client is None:
        return None
    from miner.llm import LLM, PostgresStore

    options = llm_options_from_settings(svc.settings)
    return LLM(client, options, PostgresStore(svc.conn, None), token_budget=options.token_budget)


@contextmanager
def _unmigrated_connection() -> Iterator:
    """A connection to the configured (or embedded) database, schema left as it is."""
    settings = Settings()
    database_url, _, _servers = resolve_urls(settings.database_url, None, settings.home, need_broker=False)
    with db.connect(database_url) as conn:
        yield conn


@db_app.command("migrate")
def db_migrate() -> None:
    """Apply pending schema migrations.

    Example: miner db migrate
    """
    with _unmigrated_connection() as conn:
        applied = db.migrate(conn)
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
    with services() as svc:
        typer.echo(svc.database_url)


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the miner database; extra arguments go to psql.

    Example: miner db psql -c "SELECT * FROM theme_by_model"
    """
    with services() as svc:
        psql = shutil.which("psql") or _bundled_psql()
        code = subprocess.call([psql, svc.database_url, *ctx.args])
    raise typer.Exit(code)


@db_app.command("grant-reader")
def db_grant_reader(
    name: str = typer.Argument(..., help="role name (lower-case letters, digits, _)"),
    password: Optional[str] = typer.Option(None, "--password", envvar="MINER_READER_PASSWORD",
                                           help="login password (or MINER_READER_PASSWORD)"),
) -> None:
    """Create (or fix) a login role that can SELECT the reporting views and nothing else.

    No raw tables (interviews, units with unscrubbed text), no writes. Views added by later migrations
    are readable too. Example: MINER_READER_PASSWORD=... miner db grant-reader analyst
    """
    with services() as svc:
        try:
            created = repository_reporting.grant_reader(svc.conn, name, password)
        except repository_reporting.RoleNameError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2)
        svc.conn.commit()
    console.print(f"{'created' if created else 'updated'} role {name}: SELECT on schema reporting only "
                  f"(psql -U {name}; see schemas/views.md)")


def _bundled_psql() -> str:
    import pgserver

    return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / "psql")


if __name__ == "__main__":
    app()

"""The analysis job as idempotent steps whose state lives in Postgres.

prepare → embed:0..N-1 (fanned out) → cluster → label → aggregate → understand → publish. Each step loads
its inputs from rows, writes its outputs as rows keyed by job, and records itself done in
`job_steps` in the same transaction, so a step delivered twice (worker killed before its ack)
finds itself done and returns. Readers only see a job once `publish` flips it to succeeded.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg

from miner import repository
from miner import repository_runs as runs
from miner import repository_reporting as reporting
from miner.components import Clusterer, Embedder
from miner.embed import embed_units
from miner.label import ExtractiveLabeller, label_clusters
from miner.nightly import NightlyParams, fold_in
from miner.records import Job, Unit
from miner.registry import match_themes
from miner.scrub import scrub_text
from miner.themes import build_themes, members_by_theme, model_stats, number_clusters
from miner.units import split_units

logger = logging.getLogger(__name__)

# Share of the progress bar a step's completion stands for; embed is split over its chunks.
WEIGHTS = {"prepare": 0.05, "embed": 0.60, "cluster": 0.15, "label": 0.10, "aggregate": 0.02, "understand": 0.05,
           "publish": 0.03}
DEFAULT_EMBED_CHUNK = 2000


class NoUnitsError(RuntimeError):
    """The study has no answers to analyse."""


class JobCancelled(RuntimeError):
    """The job was cancelled; its remaining steps do nothing."""


class StepBusy(RuntimeError):
    """Another process is running this step of this job right now."""


@dataclass(frozen=True)
class Components:
    """What a job needs besides the database."""

    embedder: Embedder
    clusterer: Clusterer
    labeller: ExtractiveLabeller
    # An OpenAI-compatible client (components.llm_client_from_settings); None = extractive labels only.
    llm_client: Any | None = None
    llm_options: Any | None = None   # miner.llm.LLMOptions
    label_options: Any | None = None  # miner.llm_label.LabelOptions
    understand_options: Any | None = None  # miner.understand.UnderstandOptions; None = its defaults
    nightly: NightlyParams = NightlyParams()
    embed_chunk: int = DEFAULT_EMBED_CHUNK


def run_step(conn: psycopg.Connection, job_id: str, step: str, body: Callable[[Job], dict[str, Any]]) -> dict[str, Any]:
    """Run one step once: skipped when done, refused when the job is cancelled; commits its outcome."""
    job = repository.get_job(conn, job_id)
    if job is None:
        raise LookupError(f"no job {job_id}")
    if job.status == "cancelled":
        raise JobCancelled(f"job {job_id} was cancelled")
    state = runs.step_status(conn, job_id, step)
    if job.status == "succeeded" or (state is not None and state[0] == "done"):
        conn.rollback()
        return state[1] if state else {}
    # A step delivered twice at once (a redelivery racing the original) runs only once.
    key = f"{job_id}/{step}"
    if not conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()[0]:
        conn.rollback()
        raise StepBusy(f"step {step} of job {job_id} is running elsewhere")
    try:
        runs.start_step(conn, job_id, step)
        conn.commit()
        detail = body(job)
        runs.finish_step(conn, job_id, step, detail, _progress(conn, job_id, step))
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    finally:
        if not conn.closed and not conn.broken:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))
            conn.commit()
    logger.info("job %s: %s done %s", job_id, step, detail)
    return detail


def _progress(conn: psycopg.Connection, job_id: str, finishing: str) -> float:
    chunks, _ = runs.job_plan(conn, job_id)
    finished = set(runs.done_steps(conn, job_id)) | {finishing}
    total = 0.0
    for step in finished:
        name = step.split(":")[0]
        total += WEIGHTS[name] / (chunks or 1) if name == "embed" else WEIGHTS.get(name, 0.0)
    return total


def prepare(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, Any]:
    """Fix the job's units; plan the embedding chunks. Returns {'units', 'chunks', ...}."""
    def body(job: Job) -> dict[str, Any]:
        interviews = repository.load_interviews(conn, job.study)
        units = split_units(interviews)
        if not units:
            raise NoUnitsError(f"study {job.study!r} has no answers to analyse; run `miner ingest` first")
        repository.save_units(conn, units)
        # The reporting views show only this scrubbed copy of the text (schemas/migrations/006).
        reporting.save_scrubbed_units(conn, [replace(u, question=scrub_text(u.question), answer=scrub_text(u.answer))
                                             for u in units])
        runs.save_job_units(conn, job_id, sorted(u.unit_id for u in units))
        chunks = math.ceil(len(units) / components.embed_chunk)
        previous = runs.published_job(conn, job.study, excluding=job_id)
        runs.set_job_plan(conn, job_id, chunks, previous)
        return {"interviews": len(interviews), "units": len(units), "chunks": chunks,
                "chunk_size": components.embed_chunk, "previous_job": previous}

    return run_step(conn, job_id, "prepare", body)


def embed_chunk(conn: psycopg.Connection, job_id: str, chunk: int, components: Components) -> dict[str, Any]:
    """Embed the answers of one slice of the job's units that the cache lacks."""
    def body(job: Job) -> dict[str, Any]:
        size = runs.done_steps(conn, job_id)["prepare"]["chunk_size"]
        units = runs.load_job_units(conn, job_id, offset=chunk * size, limit=size)
        return {"embedded": _embed_missing(conn, units, components.embedder)[1]}

    return run_step(conn, job_id, f"embed:{chunk}", body)


def _embed_missing(conn: psycopg.Connection, units: list[Unit], embedder: Embedder) -> tuple[np.ndarray, int]:
    cached = runs.load_vectors(conn, embedder.name, units)
    missing = {u.answer_hash for u in units} - cached.keys()
    vectors = embed_units(units, embedder, cached,
                          on_chunk=lambda new, done, total: repository.save_embeddings(conn, embedder.name, new))
    return vectors, len(missing)


def cluster(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, Any]:
    """Cluster (or, nightly, fold in) the job's answers; stable theme ids; extractive labels and quotes."""
    def body(job: Job) -> dict[str, Any]:
        units = runs.load_job_units(conn, job_id)
        # Embeds whatever an embed step left undone, so a lost or doubled chunk can't hurt.
        vectors, late = _embed_missing(conn, units, components.embedder)
        _, previous_job = runs.job_plan(conn, job_id)
        previous = runs.load_assignments(conn, previous_job) if previous_job else {}
        next_id = runs.next_theme_id(conn, job.study)
        active = runs.active_themes(conn, job.study)
        unit_ids = [u.unit_id for u in units]
        if job.kind == "nightly" and previous:
            base = runs.done_steps(conn, previous_job).get("cluster", {}).get("base_units", len(previous))
            result = fold_in(unit_ids, vectors, previous, next_id, base, components.clusterer, components.nightly,
                             active or None)
            labels, events, detail = result.labels, result.events, dict(result.counts)
            detail["base_units"] = len(units) if detail["mode"] == "recluster" else base
        else:
            clusters = number_clusters(components.clusterer.fit(vectors))
            match = match_themes(previous, dict(zip(unit_ids, clusters.tolist())), next_id, active or None)
            labels = np.array([match.theme_of_cluster.get(int(c), -1) for c in clusters], dtype=np.int64)
            events, detail = match.events, {"mode": "full", "base_units": len(units)}
        members = members_by_theme(labels)
        documents = [[units[i].answer for i in indices] for indices in members.values()]
        themes = build_themes(units, vectors, labels, label_clusters(documents, components.labeller))
        runs.save_themes(conn, job_id, themes)
        runs.save_assignments(conn, job_id, {u: (int(t) if t >= 0 else None) for u, t in zip(unit_ids, labels)})
        runs.save_theme_events(conn, job.study, job_id, events)
        outliers = int((labels < 0).sum())
        logger.info("cluster: %d units → %d themes, %d unassigned", len(units), len(themes), outliers)
        return {**detail, "themes": len(themes), "outliers": outliers, "late_embedded": late}

    return run_step(conn, job_id, "cluster", body)


def _labels_of(units: list[Unit], assigned: dict[str, int | None]) -> np.ndarray:
    """Theme id per unit from a job's assignments; -1 = unassigned."""
    return np.array([-1 if assigned.get(u.unit_id) is None else assigned[u.unit_id] for u in units], dtype=np.int64)


def _job_arrays(conn: psycopg.Connection, job_id: str, embedder: Embedder) -> tuple[list[Unit], np.ndarray, np.ndarray]:
    """The job's units, their vectors and theme labels (-1 = unassigned), aligned."""
    units = runs.load_job_units(conn, job_id)
    cached = runs.load_vectors(conn, embedder.name, units)
    vectors = np.vstack([cached[u.answer_hash] for u in units])
    assigned = runs.load_assignments(conn, job_id)
    labels = _labels_of(units, assigned)
    return units, vectors, labels


def label(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, Any]:
    """LLM labels, summaries and per-model sentences when an endpoint is configured."""
    def body(job: Job) -> dict[str, Any]:
        if components.llm_client is None:
            return {"labeller": components.labeller.name}
        from miner.llm import LLM, PostgresStore
        from miner.llm_label import label_themes

        units, vectors, labels = _job_arrays(conn, job_id, components.embedder)
        themes = runs.load_themes(conn, job_id)
        budget = job.params.get("token_budget", components.llm_options.token_budget)
        llm = LLM(components.llm_client, components.llm_options, PostgresStore(conn, job_id), token_budget=budget)
        try:
            result = label_themes(themes, units, vectors, labels, model_stats(units, labels), llm,
                                  components.label_options)
        except Exception:  # a broken LLM stage must not lose the themes: they keep extractive labels
            logger.exception("job %s: LLM labelling failed; keeping extractive labels", job_id)
            conn.rollback()  # a failed write inside the stage leaves the transaction aborted
            return {"labeller": components.labeller.name, "llm_failed": True}
        runs.update_theme_labels(conn, job_id, result.themes)
        repository.save_theme_opinions(conn, job_id, result.opinions)
        repository.save_theme_sentences(conn, job_id, result.sentences)
        return {"labeller": "llm", **result.counts}

    return run_step(conn, job_id, "label", body)


def aggregate(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, Any]:
    """Per theme × model counts and shares."""
    def body(job: Job) -> dict[str, Any]:
        units = runs.load_job_units(conn, job_id)
        assigned = runs.load_assignments(conn, job_id)
        labels = _labels_of(units, assigned)
        runs.save_model_stats(conn, job_id, model_stats(units, labels))
        from miner.tree_step import save_theme_tree  # issue 15: the theme tree, from the same labels

        tree = save_theme_tree(conn, job, units, labels, components)
        return {"models": len({u.session_model for u in units}), **tree}

    return run_step(conn, job_id, "aggregate", body)


def understand(conn: psycopg.Connection, job_id: str, components: Components) -> dict[str, Any]:
    """Question dimensions, ratings, quality verdicts and per-model statistics (miner.understand).

    Job params `include_low_quality` and `correction` ("bh" | "holm") override the defaults.
    """
    def body(job: Job) -> dict[str, Any]:
        from dataclasses import replace

        from miner.understand import UnderstandOptions, texts_to_embed, understand_interviews
        from miner.units import answer_hash

        units, vectors, labels = _job_arrays(conn, job_id, components.embedder)
        in_job = {u.interview_id for u in units}
        interviews = [i for i in repository.load_interviews(conn, job.study) if i.interview_id in in_job]
        options = components.understand_options or UnderstandOptions()
        options = replace(options, include_low_quality=bool(job.params.get("include_low_quality", options.include_low_quality)),
                          stats=replace(options.stats, correction=job.params.get("correction", options.stats.correction)))
        llm = None
        if components.llm_client is not None:
            from miner.llm import LLM, PostgresStore

            budget = job.params.get("token_budget", components.llm_options.token_budget)
            if budget is not None:  # one budget per job: what labelling spent is gone
                budget = max(0, budget - sum(row["billed_tokens"] for row in repository.llm_cost(conn, job_id)))
            llm = LLM(components.llm_client, components.llm_options, PostgresStore(conn, job_id), token_budget=budget)
        # Questions, prototypes and anchors go through the embedding cache like answers do.
        by_hash = {answer_hash(text): text for text in texts_to_embed(units)}
        cached = repository.load_embeddings(conn, components.embedder.name, by_hash)
        result = understand_interviews(interviews, units, vectors, labels, components.embedder, options, llm,
                                       savepoint=conn.transaction,
                                       known_vectors={by_hash[h]: v for h, v in cached.items()})
        repository.save_embeddings(conn, components.embedder.name,
                                   {answer_hash(text): v for text, v in result.new_vectors.items()})
        repository.save_insights(conn, job_id, result.run, result.insights, result.ratings, result.verdicts,
                                 result.statistics)
        return {**result.counts, **({} if llm is None else {f"rate_{k}": v for k, v in llm.usage().items()})}

    return run_step(conn, job_id, "understand", body)


def publish(conn: psycopg.Connection, job_id: str) -> dict[str, Any]:
    """Make the job the study's published result, atomically; fold its lineage into the registry."""
    def body(job: Job) -> dict[str, Any]:
        if runs.lock_job(conn, job_id) == "cancelled":
            raise JobCancelled(f"job {job_id} was cancelled")
        done = runs.done_steps(conn, job_id)
        counts = {"interviews": done["prepare"]["interviews"], "units": done["prepare"]["units"],
                  "embedded": sum(d.get("embedded", 0) for s, d in done.items() if s.startswith("embed:"))
                  + done["cluster"].get("late_embedded", 0),
                  "themes": done["cluster"]["themes"], "outliers": done["cluster"]["outliers"],
                  "mode": done["cluster"]["mode"]}
        counts.update({k: v for k, v in done["label"].items() if k != "labeller"})
        counts.update(done.get("understand", {}))
        for key in ("new_units", "assigned_new", "born", "growth"):
            if key in done["cluster"]:
                counts[key] = done["cluster"][key]
        runs.apply_theme_events(conn, job.study, job_id)
        repository.update_job(conn, job_id, status="succeeded", stage="done", progress=1.0, counts=counts)
        return counts

    return run_step(conn, job_id, "publish", body)


def mark_failed(conn: psycopg.Connection, job_id: str, error: BaseException) -> None:
    """Record a step's final failure on the job (unless it already ended)."""
    conn.rollback()
    job = repository.get_job(conn, job_id)
    if job is not None and job.status in ("queued", "running"):
        repository.update_job(conn, job_id, status="failed", error=f"{type(error).__name__}: {error}")
        conn.commit()


STEP_ORDER = ("prepare", "embed", "cluster", "label", "aggregate", "understand", "publish")


def first_unfinished(conn: psycopg.Connection, job_id: str) -> tuple[str, list[int]]:
    """The first step not done yet, and for 'embed' the chunks still missing."""
    done = runs.done_steps(conn, job_id)
    chunks, _ = runs.job_plan(conn, job_id)
    for step in STEP_ORDER:
        if step == "embed":
            missing = [i for i in range(chunks or 0) if f"embed:{i}" not in done]
            if missing:
                return step, missing
        elif step not in done:
            return step, []
    return "done", []

"""The analysis job's steps, one per stage module, and the one table that orders them (`STEPS`).

Each step loads its inputs from rows, calls its stage and writes its outputs as rows keyed by job;
miner.jobs runs a step once and records it done in the same transaction (the understand step also
commits each of its parts with its own done row, to resume where it stopped). What a step hands the
next is a table or a column (job_units, embeddings, assignments, themes, jobs.embed_chunk_size,
jobs.base_units), never a key of another step's `job_steps.detail`: that JSON is for people.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import psycopg

from miner import nightly_steps, repository, repository_assign, repository_jobs, repository_nightly
from miner import repository_reporting as reporting
from miner import repository_runs as runs
from miner import repository_stream as stream
from miner.assign import SampledClusterer, SampleParams, assign_nearest, centroids_of, for_sample, sample_indices
from miner.compact import STORED, stored_precision
from miner.components import Components
from miner.embed import answer_vectors, embed_units
from miner.label import label_clusters
from miner.nightly import NightlyParams, fold_in
from miner.opinion_job import (job_unit_stances, min_theme_size, off_topic_themes, opinion_units, split_by_stance,
                               theme_stances)
from miner.opinion_label import label_opinion_theme
from miner.protocols import Embedder
from miner.records import Job, JobPlan, Unit
from miner.registry import match_themes
from miner.scrub import scrubbed_units
from miner.theme_digest import JobDigest, digest_rows
from miner.themes import model_stats, number_clusters
from miner.units import split_units

logger = logging.getLogger(__name__)


class NoUnitsError(RuntimeError):
    """The study has no answers to analyse."""


class JobCancelled(RuntimeError):
    """The job was cancelled; its remaining steps do nothing."""


@dataclass(frozen=True)
class Outcome:
    """What a step did: `detail` is kept in job_steps for people; `counts` go into the job's counts
    (`summed` ones add up over a fanned-out step's parts)."""

    detail: dict[str, Any]
    counts: dict[str, Any] = field(default_factory=dict)
    summed: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One row of the job's table of steps."""

    name: str
    run: Callable[[psycopg.Connection, Job, Components, int | None], Outcome]
    weight: float          # share of the progress bar; a fanned-out step's is split over its parts
    fan_out: bool = False  # one part per embed chunk (jobs.embed_chunks), run in parallel


# Interviews the units step splits and writes at a time.
UNITS_INTERVIEWS = 5000


def units(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Fix the job's answers (miner.units) and their opinion units (miner.opinion_job; with an LLM,
    quoted in the job's one call per interview, miner.llm_units), and plan the embedding chunks. The
    opinion units are what the job embeds, clusters and themes (job_units); the answers, no-opinion
    ones flagged, feed ratings and quality (job_answers). The study's interviews are read and split
    UNITS_INTERVIEWS at a time; only ids are kept. A nightly job takes over its published job's rows
    and adds only unseen interviews (miner.nightly_steps)."""
    previous = repository_jobs.published_job(conn, job.study, excluding=job.job_id)
    if (ext := nightly_steps.extends(conn, job, previous)) is not None:
        return nightly_steps.units(conn, job, parts, ext)
    llm = _reading_llm(conn, job, parts)  # one ledger and budget share over all the parts
    answer_rows: list[tuple[str, bool]] = []
    unit_ids: list[str] = []
    interviews = no_opinion = 0
    read: Counter[str] = Counter()
    for chunk in stream.stream_interviews(conn, job.study, UNITS_INTERVIEWS):
        answers = split_units(chunk)
        found, empty, counts = _opinion_units(conn, job, parts, answers, llm)
        read.update(counts)
        repository.save_units(conn, answers + found)
        # A unit read before by another model keeps its row; its stance is this job's LLM's.
        repository.save_unit_stances(conn, {u.unit_id: u.stance for u in found if u.source == "llm"})
        # The reporting views show only this scrubbed copy of the text (schemas/migrations/006).
        reporting.save_scrubbed_units(conn, scrubbed_units(answers + found))
        answer_rows += [(u.unit_id, u.unit_id in empty) for u in answers]
        unit_ids += [u.unit_id for u in found]
        interviews, no_opinion = interviews + len(chunk), no_opinion + len(empty)
        del chunk, answers, found
    if not answer_rows:
        raise NoUnitsError(f"study {job.study!r} has no answers to analyse; run `miner ingest` first")
    answer_rows.sort()
    unit_ids.sort()
    repository_jobs.save_job_answers(conn, job.job_id, answer_rows)
    repository_jobs.save_job_units(conn, job.job_id, unit_ids)
    chunk_size = parts.embed_chunk
    plan = JobPlan(embed_chunks=max(1, math.ceil(len(unit_ids) / chunk_size)), embed_chunk_size=chunk_size,
                   previous_job_id=previous)
    repository_jobs.set_job_plan(conn, job.job_id, plan)
    found_count = {"interviews": interviews, "answers": len(answer_rows), "no_opinion": no_opinion,
                   "units": len(unit_ids), **read, **_reading_usage(llm)}
    return Outcome({**found_count, "chunks": plan.embed_chunks, "chunk_size": plan.embed_chunk_size,
                    "previous_job": plan.previous_job_id}, counts=found_count)


def _reading_llm(conn: psycopg.Connection, job: Job, parts: Components):
    """The units step's LLM (its share of the job's token budget, miner.llm_units), or None offline."""
    if parts.llm_client is None:
        return None
    from miner.llm_units import READ_BUDGET_SHARE

    return _llm(conn, job, parts, share=READ_BUDGET_SHARE)


def _reading_usage(llm) -> dict[str, Any]:
    """The reading LLM's job counts (`rate_llm_*`), none offline."""
    return {} if llm is None else {f"rate_{k}": v for k, v in llm.usage().items()}


def _opinion_units(conn: psycopg.Connection, job: Job, parts: Components, answers: list[Unit],
                   llm) -> tuple[list[Unit], set[str], dict[str, int]]:
    """Opinion units, no-opinion answer ids and reading counts: offline (miner.opinion_job) when
    `llm` is None, else from the job's one call per interview (miner.llm_units), whose ratings are
    kept for `understand` (interview_readings)."""
    if llm is None:
        return (*opinion_units(answers), {})
    from miner.llm_rate import reading_json
    from miner.llm_units import read_with_llm
    from miner.understand import UnderstandOptions

    scrub = (parts.understand_options or UnderstandOptions()).llm_scrub
    read = read_with_llm(answers, llm, scrub=scrub)
    repository.save_interview_readings(conn, job.job_id, llm.options.model,
                                       {i: reading_json(r) for i, r in read.ratings.items()})
    return read.units, read.empty, dict(read.counts)


def embed(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Embed the answers of one chunk of the job's units that the cache lacks (miner.embed)."""
    size = repository_jobs.job_plan(conn, job.job_id).embed_chunk_size
    ext = nightly_steps.extends(conn, job)  # a nightly job's chunks cover its new units
    chunk = repository_jobs.load_job_units(conn, job.job_id, offset=(ext.units_from if ext else 0) + (part or 0) * size,
                                           limit=size)
    embedded = _embed_missing(conn, chunk, parts.embedder)[1]
    return Outcome({"embedded": embedded}, summed={"embedded": embedded})


def _embed_missing(conn: psycopg.Connection, units: list[Unit], embedder: Embedder) -> tuple[np.ndarray, int]:
    cached = runs.load_vectors(conn, embedder.name, units)
    missing = {u.answer_hash for u in units} - cached.keys()
    vectors = embed_units(units, stored_precision(embedder), cached,
                          on_chunk=lambda new, done, total: repository.save_embeddings(conn, embedder.name, new))
    return vectors, len(missing)


def cluster(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Theme ids for the job's answers: cluster (miner.cluster) or, nightly, fold in (miner.nightly),
    matched to the published job's ids (miner.registry). Writes assignments and lineage events."""
    if (ext := nightly_steps.extends(conn, job)) is not None:
        return nightly_steps.cluster(conn, job, parts, ext)
    plan = repository_jobs.job_plan(conn, job.job_id)
    sample = parts.sample or SampleParams()
    total = repository_assign.count_job_units(conn, job.job_id)
    if sample.sampled(total) and not (job.kind == "nightly" and plan.previous_job_id):
        return _cluster_sample(conn, job, parts, plan, sample, total)
    repository_assign.set_sampled_units(conn, job.job_id, None)
    units = repository_jobs.load_job_units(conn, job.job_id)
    # Embeds whatever an embed step left undone, so a lost or doubled chunk can't hurt.
    vectors, late = _embed_missing(conn, units, parts.embedder)
    previous = runs.load_assignments(conn, plan.previous_job_id) if plan.previous_job_id else {}
    next_id = runs.next_theme_id(conn, job.study)
    active = runs.active_themes(conn, job.study)
    unit_ids = [u.unit_id for u in units]
    stances = job_unit_stances(units, vectors, parts.embedder)
    repository.save_unit_stances(conn, dict(zip(unit_ids, stances)))
    if job.kind == "nightly" and previous:
        # Jobs published before base_units was a column measured growth from their own size.
        base = repository_jobs.job_plan(conn, plan.previous_job_id).base_units or len(previous)
        # A nightly re-cluster of a large study fits on a sample too (assigned in process here).
        clusterer = SampledClusterer(_clusterer(parts), parts.sample or SampleParams())
        result = fold_in(unit_ids, vectors, previous, next_id, base, clusterer, parts.nightly or NightlyParams(),
                         active or None)
        labels, events, detail = result.labels, result.events, dict(result.counts)
        base_units = len(units) if detail["mode"] == "recluster" else base
    else:
        # Praise and complaint about one aspect are two themes (miner.opinion_job.split_by_stance).
        found = _clusterer(parts).fit(vectors) if len(units) else np.zeros(0, dtype=np.int64)
        clusters = number_clusters(split_by_stance(found, stances, min_theme_size(len(units))))
        match = match_themes(previous, dict(zip(unit_ids, clusters.tolist())), next_id, active or None)
        labels = np.array([match.theme_of_cluster.get(int(c), -1) for c in clusters], dtype=np.int64)
        events, detail, base_units = match.events, {"mode": "full"}, len(units)
    del vectors  # the step's largest structure; the rows below don't need it
    runs.save_assignments(conn, job.job_id, {u: (int(t) if t >= 0 else None) for u, t in zip(unit_ids, labels)})
    runs.save_theme_events(conn, job.study, job.job_id, events)
    repository_jobs.set_base_units(conn, job.job_id, base_units)
    counts = {k: detail[k] for k in ("mode", "new_units", "assigned_new", "born", "growth") if k in detail}
    return Outcome({**detail, "base_units": base_units, "late_embedded": late}, counts=counts,
                   summed={"embedded": late})


def _cluster_sample(conn: psycopg.Connection, job: Job, parts: Components, plan: JobPlan, sample: SampleParams,
                    total: int) -> Outcome:
    """Above the threshold: fit on a seeded sample (miner.assign), match its clusters to the published
    themes, keep each theme's centroid; the `assign` step gives every other unit its nearest theme."""
    units = repository_assign.load_job_units_at(conn, job.job_id, sample_indices(total, sample.size, sample.seed))
    vectors, late = _embed_missing(conn, units, parts.embedder)
    unit_ids = [u.unit_id for u in units]
    stances = job_unit_stances(units, vectors, parts.embedder)
    repository.save_unit_stances(conn, dict(zip(unit_ids, stances)))
    # The fit's peak is HDBSCAN's (BENCHMARKS.md `## Scale`): the texts go before it, and the vectors
    # are held at their stored precision (float16, lossless: every job vector is rounded to it,
    # miner.compact), half the bytes; the clusterer and centroids_of compute in float32 as before.
    del units
    vectors = vectors.astype(STORED)
    previous = runs.load_assignments(conn, plan.previous_job_id) if plan.previous_job_id else {}
    previous = {u: previous[u] for u in unit_ids if u in previous}  # the sample's share of the lineage
    found = for_sample(_clusterer(parts), total, len(unit_ids)).fit(vectors)
    clusters = number_clusters(split_by_stance(found, stances, min_theme_size(len(unit_ids))))
    match = match_themes(previous, dict(zip(unit_ids, clusters.tolist())), runs.next_theme_id(conn, job.study),
                         runs.active_themes(conn, job.study) or None)
    labels = np.array([match.theme_of_cluster.get(int(c), -1) for c in clusters], dtype=np.int64)
    theme_ids, centroids = centroids_of(vectors, labels)
    del vectors
    runs.save_assignments(conn, job.job_id, {u: (int(t) if t >= 0 else None) for u, t in zip(unit_ids, labels)})
    repository_assign.save_centroids(conn, job.job_id, theme_ids.tolist(), centroids)
    repository_assign.set_sampled_units(conn, job.job_id, len(unit_ids))
    runs.save_theme_events(conn, job.study, job.job_id, match.events)
    repository_jobs.set_base_units(conn, job.job_id, total)
    return Outcome({"mode": "sampled", "units": total, "sample": len(unit_ids), "themes": int(theme_ids.size),
                    "base_units": total, "late_embedded": late},
                   counts={"mode": "sampled", "sampled_units": len(unit_ids)}, summed={"embedded": late})


def assign(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """A sampled job's units of one chunk to their nearest theme centroid (miner.assign); nothing
    when the cluster step fitted every unit."""
    if repository_assign.sampled_units(conn, job.job_id) is None:
        return Outcome({"sampled": False})
    size = repository_jobs.job_plan(conn, job.job_id).embed_chunk_size
    chunk = repository_jobs.load_job_units(conn, job.job_id, offset=(part or 0) * size, limit=size)
    vectors, late = _embed_missing(conn, chunk, parts.embedder)
    repository.save_unit_stances(conn, dict(zip((u.unit_id for u in chunk),
                                                job_unit_stances(chunk, vectors, parts.embedder))))
    theme_ids, centroids = repository_assign.load_centroids(conn, job.job_id)
    labels = assign_nearest(vectors, theme_ids, centroids)
    written = repository_assign.add_assignments(
        conn, job.job_id, {u.unit_id: (int(t) if t >= 0 else None) for u, t in zip(chunk, labels)})
    return Outcome({"assigned": written, "late_embedded": late}, summed={"assigned": written, "embedded": late})


def _clusterer(parts: Components):
    return parts.theme_clusterer or parts.clusterer


def _digest(conn: psycopg.Connection, job_id: str, embedder: Embedder) -> JobDigest:
    """The job's units streamed once into per-unit refs and per-theme sums and samples (miner.theme_digest):
    what the themes, label and tree steps read, bounded however many units the job has."""
    return digest_rows(stream.stream_job_units(conn, job_id, embedder.name))


def themes(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Themes from the assignments (miner.themes): extractive labels, quotes, per theme × model counts.
    Keywords, phrase and quotes come from each theme's bounded sample, counts from every unit."""
    if (ext := nightly_steps.extends(conn, job)) is not None and (done := nightly_steps.themes(conn, job, parts, ext)):
        return done
    digest = _digest(conn, job.job_id, parts.embedder)
    samples = {t: digest.sample(t) for t in digest.theme_ids}
    documents = [[u.answer for u in units] for units, _ in samples.values()]
    # Keywords from the extractive labeller; the label is the phrase that says the opinion.
    named = [replace(n, label=label_opinion_theme([u.answer for u in units], vectors,
                                                  [u.stance or "neutral" for u in units], parts.embedder).phrase)
             for n, (units, vectors) in zip(label_clusters(documents, parts.labeller), samples.values(), strict=True)]
    off_topic = off_topic_themes(samples, parts.embedder)
    del samples, documents
    stances = theme_stances(digest.refs, digest.labels, off_topic)
    built = [replace(t, stance=stances[t.theme_id]) for t in digest.build_themes(named)]
    runs.save_themes(conn, job.job_id, built)
    runs.save_model_stats(conn, job.job_id, model_stats(digest.refs, digest.labels))
    outliers = int((digest.labels < 0).sum())
    logger.info("themes: %d units → %d themes, %d unassigned", len(digest.refs), len(built), outliers)
    return Outcome({"themes": len(built), "outliers": outliers,
                    "models": len({r.session_model for r in digest.refs})},
                   counts={"themes": len(built), "outliers": outliers})


# Purposes of the calls about themes (miner.llm_label, miner.tree_label): a job sends at most two per
# theme of them in all (one per interview goes to reading, miner.llm_rate).
THEME_PURPOSES = ("label", "distinct", "tree")


def theme_calls_left(conn: psycopg.Connection, job: Job, themes: int) -> int:
    """What is left of the job's 2 calls per theme after the theme calls it sent already."""
    sent = sum(row["calls"] - row["cache_hits"] - row["skipped"] for row in repository.llm_cost(conn, job.job_id)
               if row["purpose"] in THEME_PURPOSES)
    return max(0, 2 * themes - sent)


def _llm(conn: psycopg.Connection, job: Job, parts: Components, share: float = 1.0, themes: int | None = None,
         repair_attempts: int | None = None):
    """A miner.llm.LLM over the job's ledger, with what is left of the job's token budget (one budget
    per job: what earlier steps spent is gone), or of `share` of it; given `themes`, with what is
    left of their call budget (theme_calls_left); given `repair_attempts`, with that many re-asks."""
    from miner.llm import LLM, LLMOptions, PostgresStore

    options = parts.llm_options or LLMOptions(model="")
    if repair_attempts is not None:
        options = replace(options, repair_attempts=repair_attempts)
    budget = job.params.get("token_budget", options.token_budget)
    spent = 0
    if budget is not None:
        budget = int(budget * share)
        spent = sum(row["billed_tokens"] for row in repository.llm_cost(conn, job.job_id))
    calls = None if themes is None else theme_calls_left(conn, job, themes)
    return LLM(parts.llm_client, options, PostgresStore(conn, job.job_id), token_budget=budget, spent=spent,
               call_budget=calls)


def label(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """LLM labels, summaries and per-model sentences (miner.llm_label) when an endpoint is configured.

    The LLM's failures are values (its ledger, extractive labels kept); an exception here is a bug or
    a database error and fails the step."""
    if parts.llm_client is None:
        return Outcome({"labeller": parts.labeller.name})
    if (ext := nightly_steps.extends(conn, job)) is not None and (done := nightly_steps.label(conn, job, parts, ext)):
        return done
    from miner.llm_label import LabelOptions, label_themes

    digest = _digest(conn, job.job_id, parts.embedder)
    units, vectors, labels = digest.sampled_arrays()  # examples and neighbours from each theme's sample
    themes = runs.load_themes(conn, job.job_id)
    result = label_themes(themes, units, vectors, labels, model_stats(digest.refs, digest.labels),
                          _llm(conn, job, parts, themes=len(themes)), parts.label_options or LabelOptions())
    runs.update_theme_labels(conn, job.job_id, result.themes)
    repository.save_theme_opinions(conn, job.job_id, result.opinions)
    repository.save_theme_sentences(conn, job.job_id, result.sentences)
    return Outcome({"labeller": "llm", **result.counts}, counts=dict(result.counts))


def tree(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """The theme tree (miner.tree): areas over the themes, named after the LLM labelled the themes."""
    from miner.tree_step import save_theme_tree

    if (ext := nightly_steps.extends(conn, job)) is not None and (done := nightly_steps.tree(conn, job, parts, ext)):
        return done
    counts = save_theme_tree(conn, job, _digest(conn, job.job_id, parts.embedder), parts)
    return Outcome(counts)


# Interviews the understand step reads and writes at a time: its memory grows with this, not the study.
UNDERSTAND_INTERVIEWS = 5000


def understand(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Question dimensions, ratings, quality verdicts and per-model statistics (miner.understand);
    with an LLM, its ratings are those the units step's call gave (interview_readings).

    Everything but the statistics is per interview, so the job's interviews are understood
    UNDERSTAND_INTERVIEWS at a time, each part's rows (engagement sums included) committed with its
    own done row in job_steps (`understand:<part>`): a step stopped inside (a worker killed, a
    failure) resumes at its first unfinished part. The statistics are computed at the end from the
    stored rows (`job_statistics`), as a nightly job's are, and recorded with the step.
    Job params `include_low_quality` and `correction` ("bh" | "holm") override the defaults.
    """
    if (ext := nightly_steps.extends(conn, job)) is not None and (
            done := nightly_steps.understand(conn, job, parts, ext)):
        return done
    options = understand_options(job, parts)
    interview_ids = stream.job_interview_ids(conn, job.job_id)
    bounds = [interview_ids[start:start + UNDERSTAND_INTERVIEWS]
              for start in range(0, len(interview_ids), UNDERSTAND_INTERVIEWS)]
    del interview_ids
    estimators = _understood_parts(conn, job.job_id, bounds)
    for index, ids in enumerate(bounds):
        if index in estimators:
            continue
        if repository_jobs.get_job(conn, job.job_id).status == "cancelled":
            raise JobCancelled(f"job {job.job_id} was cancelled")
        key = f"{UNDERSTAND_PART}{index}"
        repository_jobs.start_step(conn, job.job_id, key)
        # Ratings and quality read whole answers (no-opinion ones too).
        estimators[index] = understand_part(conn, job, parts, options, stream.load_interviews_in(conn, ids),
                                            stream.load_job_answers_in(conn, job.job_id, ids))
        repository_jobs.finish_step(conn, job.job_id, key, {"first_interview": ids[0], "interviews": len(ids),
                                                            "rating_estimator": estimators[index]}, 0.0)
        conn.commit()  # the part's rows and its done row, together
    # A part the LLM did not rate in full says so (llm:<model> + the offline estimator); that one wins.
    estimator = max(estimators.values(), key=lambda e: (" + " in e, e), default="")
    counts = job_statistics(conn, job.job_id, options, estimator)
    return Outcome(counts, counts=counts)


# The understand step's parts' rows in job_steps: `understand:0`, `understand:1`, ... (not a fanned-out
# step: its parts run one after another in its task; miner.jobs.progress leaves them out).
UNDERSTAND_PART = "understand:"


def _understood_parts(conn: psycopg.Connection, job_id: str, bounds: list[list[str]]) -> dict[int, str]:
    """The parts of the understand step that an earlier try finished (part → its rating estimator),
    when they are the parts of `bounds` (same first interview, same size); otherwise none, and the
    job's insight rows and part rows are cleared for a fresh start. It reads only this step's own
    parts' detail (the estimator each part's ratings came from), no other step's."""
    done = {int(key.removeprefix(UNDERSTAND_PART)): detail
            for key, detail in repository_jobs.done_steps(conn, job_id).items() if key.startswith(UNDERSTAND_PART)}
    if done and all(p < len(bounds) and d.get("first_interview") == bounds[p][0]
                    and d.get("interviews") == len(bounds[p]) for p, d in done.items()):
        logger.info("job %s: understand resumes, %d of %d parts done", job_id, len(done), len(bounds))
        return {p: d["rating_estimator"] for p, d in done.items()}
    repository.clear_insights(conn, job_id)
    repository_jobs.delete_steps(conn, job_id, UNDERSTAND_PART)
    return {}


def understand_part(conn: psycopg.Connection, job: Job, parts: Components, options, interviews: list,
                    answers: list[Unit]) -> str:
    """Dimensions, ratings, quality verdicts and engagement sums of some of the job's interviews, written
    as rows (their statistics come later from those rows, `job_statistics`); with an LLM, the ratings its
    units-step call gave (interview_readings). Returns the rating estimator's name. An answer cut into
    opinion units takes its vector from theirs (miner.embed.answer_vectors), so only answers with no
    unit are embedded here."""
    from miner.llm_rate import reading_from_json
    from miner.stats import interview_engagement
    from miner.understand import texts_to_embed, understand_interviews
    from miner.units import answer_hash

    spans = stream.load_job_units_in(conn, job.job_id, [i.interview_id for i in interviews])
    vectors = answer_vectors(answers, spans, lambda units: _embed_missing(conn, units, parts.embedder)[0])
    del spans
    rated_by, readings = repository.load_interview_readings(conn, job.job_id, [i.interview_id for i in interviews])
    by_interview = {u.interview_id: u.session_model for u in answers}
    rated = {i: reading_from_json(i, by_interview[i], r) for i, r in readings.items() if i in by_interview}
    # Questions, prototypes and anchors go through the embedding cache like answers do.
    by_hash = {answer_hash(text): text for text in texts_to_embed(answers)}
    cached = repository.load_embeddings(conn, parts.embedder.name, by_hash)
    embedder = stored_precision(parts.embedder)  # new vectors at the precision the cache keeps
    result = understand_interviews(interviews, answers, vectors, np.full(len(answers), -1, dtype=np.int64),
                                   embedder, options, known_vectors={by_hash[h]: v for h, v in cached.items()},
                                   rated=rated, rated_by=rated_by, with_statistics=False)
    repository.save_embeddings(conn, parts.embedder.name,
                               {answer_hash(text): v for text, v in result.new_vectors.items()})
    repository.add_insights(conn, job.job_id, result.insights, result.ratings, result.verdicts,
                            interview_engagement(interviews, answers))
    return result.run["rating_estimator"]


def job_statistics(conn: psycopg.Connection, job_id: str, options, rating_estimator: str) -> dict[str, Any]:
    """The job's statistics over all its interviews, from its stored per-interview and per-unit rows
    (interview_engagement, ratings, quality_verdicts, unit_insights, assignments: no answer is
    re-read), saved with its insight run (`options`: miner.understand.UnderstandOptions); returns the
    step's counts. The understand step calls it after its parts, a nightly job's after its new
    interviews (miner.nightly_steps). Ratings and themed sentiment arrive aggregated per cell and the
    interview counts counted in SQL (miner.stats.stored_statistics): per answer it holds a float, not a row."""
    from miner.stats import stored_statistics

    exclude = not options.include_low_quality
    engagement = repository_nightly.load_engagement(conn, job_id)
    excluded = repository_nightly.low_quality_interviews(conn, job_id) if exclude else set()
    with_theme, sentiment = repository_nightly.included_themed(conn, job_id, exclude)
    statistics = stored_statistics(engagement, excluded, repository_nightly.included_rating_cells(conn, job_id, exclude),
                                   (repository_nightly.included_totals(conn, job_id, exclude), with_theme),
                                   sentiment, options.stats)
    run = {"rating_estimator": rating_estimator, "correction": options.stats.correction,
           "alpha": options.stats.alpha, "low_quality_included": options.include_low_quality,
           "interviews": len(engagement), "excluded": len(excluded)}
    repository.save_statistics(conn, job_id, run, statistics)
    repository_nightly.restate_tree_prevalence(conn, job_id, exclude)  # the tree step ran before quality was known
    counts = {**repository_nightly.insight_counts(conn, job_id), "excluded": len(excluded),
              "significant_theme_differences": sum(p.significant for p in statistics.prevalence)}
    return counts


def understand_options(job: Job, parts: Components):
    """The understand options, with the job's params `include_low_quality` and `correction` applied."""
    from miner.understand import UnderstandOptions

    options = parts.understand_options or UnderstandOptions()
    return replace(options, include_low_quality=bool(job.params.get("include_low_quality", options.include_low_quality)),
                   stats=replace(options.stats, correction=job.params.get("correction", options.stats.correction)))


def publish(conn: psycopg.Connection, job: Job, parts: Components, part: int | None = None) -> Outcome:
    """Make the job the study's published result, atomically; fold its lineage into the registry."""
    if repository_jobs.lock_job(conn, job.job_id) == "cancelled":
        raise JobCancelled(f"job {job.job_id} was cancelled")
    runs.apply_theme_events(conn, job.job_id)
    repository_jobs.update_job(conn, job.job_id, status="succeeded", stage="done", progress=1.0)
    return Outcome(repository_jobs.get_job(conn, job.job_id).counts)


# The job, in order. Inserting a step is one line here; the pipeline, the Celery tasks, resume and
# progress all read this table.
STEPS: tuple[Step, ...] = (
    Step("units", units, 0.05),
    Step("embed", embed, 0.60, fan_out=True),
    Step("cluster", cluster, 0.10),
    Step("assign", assign, 0.03, fan_out=True),  # sampled jobs only (miner.assign)
    Step("themes", themes, 0.04),
    Step("label", label, 0.09),
    Step("tree", tree, 0.01),
    Step("understand", understand, 0.05),
    Step("publish", publish, 0.03),
)

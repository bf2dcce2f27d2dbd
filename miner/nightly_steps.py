"""The incremental side of a nightly job's steps (miner.steps dispatches here).

A nightly job extends the study's published job: its `units` step copies that job's answers and
opinion units (same positions) and appends only the interviews it had not seen; every later step
does its work for those new rows and copies the rest forward:

- embed: the new units only (the embed chunks cover positions from the first new unit on);
- cluster: miner.nightly.fold_in with the old units' published themes; stances for new units only;
  the old units' cached vectors are read once (theme centroids and the unassigned pool), their
  rows are copied and only new or changed assignments are written;
- themes: a theme keeps its label, keywords, stance and quotes until it has grown by RELABEL_GROWTH
  since its label was written, or is new; only those are relabelled (their members read, the other
  themes contributing a few answers each as the c-TF-IDF contrast); sizes and the theme × model
  counts come from the stored assignments;
- label (LLM): only the relabelled themes; the others' LLM rows are copied;
- tree: copied (stats recounted) while the set of themes and their labels are unchanged;
- understand: ratings, stance, dimensions, quality and engagement sums for the new interviews only,
  the rest copied; the statistics are recomputed over the study from those stored per-interview
  values (miner.steps.job_statistics, as a full job's are), without re-reading any answer.

When any old unit changed theme (the fold-in re-clustered), or the job it extends predates what is
copied here, the step takes the full path. A function returning None means: take the full path.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np
import psycopg

from miner import repository, repository_assign, repository_jobs
from miner import repository_nightly as stored
from miner import repository_reporting as reporting
from miner import repository_runs as runs
from miner.assign import SampledClusterer, SampleParams
from miner.components import Components
from miner.records import Job, JobPlan
from miner.scrub import scrubbed_units

logger = logging.getLogger(__name__)

# A theme is relabelled once it has this much more answers than when its label was written.
RELABEL_GROWTH = 0.2
# Answers of each unchanged theme that stand for it when relabelled themes' keywords are chosen.
CONTRAST_ANSWERS = 50


@dataclass(frozen=True)
class Extends:
    """The published job a nightly job extends, and where its new rows start."""

    previous: str
    units_from: int    # position of the first new opinion unit (job_units)
    answers_from: int  # position of the first new answer (job_answers)


def extends(conn: psycopg.Connection, job: Job, previous: str | None = None) -> Extends | None:
    """What this nightly job extends; None for a full job, a first job, or a previous job with no
    answer rows (one from before opinion units)."""
    if job.kind != "nightly":
        return None
    previous = previous or repository_jobs.job_plan(conn, job.job_id).previous_job_id
    if previous is None:
        return None
    answers = stored.rows_in_order(conn, "job_answers", previous)
    if answers == 0:
        return None
    return Extends(previous, stored.rows_in_order(conn, "job_units", previous), answers)


def units(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """The previous job's answers and units, then the unseen interviews' ones appended."""
    from miner.steps import NoUnitsError, Outcome, _opinion_units, _reading_llm, _reading_usage
    from miner.units import split_units

    interviews = stored.load_unseen_interviews(conn, job.study, ext.previous)
    answers = split_units(interviews)
    # Offline, or read by the LLM in one call per new interview (its ratings kept for `understand`).
    llm = _reading_llm(conn, job, parts) if answers else None
    found, empty, read = _opinion_units(conn, job, parts, answers, llm) if answers else ([], set(), {})
    read = {**read, **_reading_usage(llm)}
    repository.save_units(conn, answers + found)
    repository.save_unit_stances(conn, {u.unit_id: u.stance for u in found if u.source == "llm"})
    reporting.save_scrubbed_units(conn, scrubbed_units(answers + found))
    old_answers = stored.copy_rows(conn, "job_answers", ext.previous, job.job_id)
    old_units = stored.copy_rows(conn, "job_units", ext.previous, job.job_id)
    repository_jobs.save_job_answers(conn, job.job_id, [(u.unit_id, u.unit_id in empty)
                                                        for u in sorted(answers, key=lambda u: u.unit_id)],
                                     start=old_answers)
    repository_jobs.save_job_units(conn, job.job_id, sorted(u.unit_id for u in found), start=old_units)
    if old_answers + len(answers) == 0:
        raise NoUnitsError(f"study {job.study!r} has no answers to analyse; run `miner ingest` first")
    chunk = parts.embed_chunk
    plan = JobPlan(embed_chunks=max(1, math.ceil(len(found) / chunk)), embed_chunk_size=chunk,
                   previous_job_id=ext.previous)
    repository_jobs.set_job_plan(conn, job.job_id, plan)
    total_interviews, no_opinion = stored.count_interviews(conn, job.job_id)
    counts = {"interviews": total_interviews, "answers": old_answers + len(answers), "no_opinion": no_opinion,
              "units": old_units + len(found), "new_interviews": len(interviews), "new_answers": len(answers),
              "new_units": len(found), **read}
    return Outcome({**counts, "chunks": plan.embed_chunks, "chunk_size": chunk, "previous_job": ext.previous,
                    "copied_answers": old_answers, "copied_units": old_units}, counts=counts)


def cluster(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """Fold the new units into the published themes (miner.nightly.fold_in); write what changed."""
    from miner.nightly import NightlyParams, fold_in
    from miner.opinion_job import unit_stances
    from miner.steps import Outcome, _clusterer, _embed_missing

    repository_assign.set_sampled_units(conn, job.job_id, None)
    new = repository_jobs.load_job_units(conn, job.job_id, offset=ext.units_from)
    new_vectors, late = _embed_missing(conn, new, parts.embedder)
    repository.save_unit_stances(conn, dict(zip((u.unit_id for u in new),
                                                unit_stances([u.answer for u in new], new_vectors, parts.embedder))))
    old, old_hashes, old_labels = stored.load_unit_themes(conn, ext.previous)
    cached = repository.load_embeddings(conn, parts.embedder.name, old_hashes)
    vectors = np.vstack([cached[h] for h in old_hashes] + ([new_vectors] if new else []))
    del cached
    previous = {u.unit_id: (int(t) if t >= 0 else None) for u, t in zip(old, old_labels)}
    unit_ids = list(previous) + [u.unit_id for u in new]
    base = repository_jobs.job_plan(conn, ext.previous).base_units or len(previous)
    clusterer = SampledClusterer(_clusterer(parts), parts.sample or SampleParams())
    result = fold_in(unit_ids, vectors, previous, runs.next_theme_id(conn, job.study), base, clusterer,
                     parts.nightly or NightlyParams(), runs.active_themes(conn, job.study) or None)
    del vectors
    detail = dict(result.counts)
    labels = {u: (int(t) if t >= 0 else None) for u, t in zip(unit_ids, result.labels)}
    copied = stored.copy_rows(conn, "assignments", ext.previous, job.job_id)
    changed = {u: t for u, t in labels.items() if u not in previous or previous[u] != t}
    stored.add_assignments(conn, job.job_id, changed)
    runs.save_theme_events(conn, job.study, job.job_id, result.events)
    base_units = len(unit_ids) if detail["mode"] == "recluster" else base
    repository_jobs.set_base_units(conn, job.job_id, base_units)
    counts = {k: detail[k] for k in ("mode", "new_units", "assigned_new", "born", "growth") if k in detail}
    return Outcome({**detail, "base_units": base_units, "late_embedded": late, "copied_assignments": copied,
                    "written_assignments": len(changed)},
                   counts=counts, summed={"embedded": late})


def _moved(conn: psycopg.Connection, job: Job, ext: Extends) -> bool:
    """Whether any unit the previous job had themed is in another theme (or none) now."""
    return conn.execute(
        """SELECT EXISTS (SELECT 1 FROM assignments p JOIN assignments a USING (unit_id)
                          WHERE p.job_id = %s AND a.job_id = %s AND p.theme_id IS NOT NULL
                            AND p.theme_id IS DISTINCT FROM a.theme_id)""",
        (ext.previous, job.job_id)).fetchone()[0]


def relabelled(sizes: dict[int, int], labelled: dict[int, int]) -> list[int]:
    """Themes to relabel: new ones, and those grown by RELABEL_GROWTH since their label was written."""
    return sorted(t for t, n in sizes.items() if t not in labelled or n >= labelled[t] * (1 + RELABEL_GROWTH))


def _sizes(labels: np.ndarray) -> dict[int, int]:
    return {int(t): int(n) for t, n in Counter(labels[labels >= 0].tolist()).items()}


def themes(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """Carry unchanged themes over with new sizes; relabel new and grown ones from their members."""
    from miner.label import label_clusters
    from miner.opinion_job import off_topic_themes, theme_stances
    from miner.opinion_label import label_opinion_theme
    from miner.steps import Outcome
    from miner.themes import build_themes, model_stats

    if _moved(conn, job, ext):
        return None
    of, _, labels = stored.load_unit_themes(conn, job.job_id)
    sizes = _sizes(labels)
    labelled = stored.labelled_sizes(conn, ext.previous)
    redo = relabelled(sizes, labelled)
    interviews: dict[int, set[str]] = {}
    for unit, label in zip(of, labels):
        if label >= 0:
            interviews.setdefault(int(label), set()).add(unit.interview_id)
    kept = [replace(t, answers=sizes[t.theme_id], interviews=len(interviews[t.theme_id]))
            for t in runs.load_themes(conn, ext.previous) if t.theme_id in sizes and t.theme_id not in redo]
    fresh = []
    if redo:
        members, member_labels = stored.load_theme_members(conn, job.job_id, redo)
        cached = repository.load_embeddings(conn, parts.embedder.name, [u.answer_hash for u in members])
        vectors = np.vstack([cached[u.answer_hash] for u in members])
        groups = {t: np.flatnonzero(member_labels == t) for t in redo}
        contrast = stored.load_theme_texts(conn, job.job_id, CONTRAST_ANSWERS)
        documents = [[members[i].answer for i in groups[t]] for t in redo]
        documents += [texts for t, texts in sorted(contrast.items()) if t not in groups]
        named = [replace(n, label=label_opinion_theme([members[i].answer for i in groups[t]], vectors[groups[t]],
                                                      [members[i].stance or "neutral" for i in groups[t]],
                                                      parts.embedder).phrase)
                 for n, t in zip(label_clusters(documents, parts.labeller)[:len(redo)], redo, strict=True)]
        off_topic = off_topic_themes({t: ([members[i] for i in groups[t]], vectors[groups[t]]) for t in redo},
                                     parts.embedder)
        stances = theme_stances(members, member_labels, off_topic)
        fresh = [replace(t, stance=stances[t.theme_id])
                 for t in build_themes(members, vectors, member_labels, named)]
    built = sorted(kept + fresh, key=lambda t: t.theme_id)
    runs.save_themes(conn, job.job_id, built)
    stored.set_labelled_sizes(conn, job.job_id, {**{t.theme_id: labelled[t.theme_id] for t in kept},
                                                 **{t.theme_id: t.answers for t in fresh}})
    runs.save_model_stats(conn, job.job_id, model_stats(of, labels))
    outliers = int((labels < 0).sum())
    return Outcome({"themes": len(built), "outliers": outliers, "models": len({u.session_model for u in of}),
                    "relabelled": len(fresh), "carried_over": len(kept)},
                   counts={"themes": len(built), "outliers": outliers, "relabelled_themes": len(fresh)})


def _redo(conn: psycopg.Connection, job: Job, ext: Extends) -> list[int]:
    """The themes the themes step relabelled: those whose label was written at another size than
    in the previous job (or that it did not have)."""
    before = stored.labelled_sizes(conn, ext.previous)
    return sorted(t for t, n in stored.labelled_sizes(conn, job.job_id).items() if before.get(t) != n)


def label(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """LLM labels for the relabelled themes only; the others' LLM rows are copied."""
    from miner.llm_label import LabelOptions, label_themes
    from miner.steps import Outcome, _llm
    from miner.themes import model_stats

    if _moved(conn, job, ext):
        return None
    redo = _redo(conn, job, ext)
    for table in stored.PER_THEME:
        stored.copy_rows(conn, table, ext.previous, job.job_id, skip_themes=redo)
    if not redo:
        return Outcome({"labeller": "llm", "relabelled": 0})
    members, member_labels = stored.load_theme_members(conn, job.job_id, redo)
    cached = repository.load_embeddings(conn, parts.embedder.name, [u.answer_hash for u in members])
    vectors = np.vstack([cached[u.answer_hash] for u in members])
    of, _, labels = stored.load_unit_themes(conn, job.job_id)
    stats = [s for s in model_stats(of, labels) if s.theme_id in set(redo)]
    themes_ = [t for t in runs.load_themes(conn, job.job_id) if t.theme_id in set(redo)]
    result = label_themes(themes_, members, vectors, member_labels, stats,
                          _llm(conn, job, parts, themes=len(themes_)), parts.label_options or LabelOptions())
    runs.update_theme_labels(conn, job.job_id, result.themes)
    repository.save_theme_opinions(conn, job.job_id, result.opinions)
    repository.save_theme_sentences(conn, job.job_id, result.sentences)
    return Outcome({"labeller": "llm", "relabelled": len(redo), **result.counts}, counts=dict(result.counts))


def tree(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """The previous tree, recounted, while the themes and their labels are those it was built on."""
    from miner import repository_tree
    from miner.opinion_job import node_stance
    from miner.steps import Outcome
    from miner.tree import node_stats

    before = {t.theme_id: t.label for t in runs.load_themes(conn, ext.previous)}
    now = runs.load_themes(conn, job.job_id)
    nodes = repository_tree.load_tree(conn, ext.previous)
    if not nodes or _moved(conn, job, ext) or {t.theme_id: t.label for t in now} != before:
        return None
    of, _, labels = stored.load_unit_themes(conn, job.job_id)
    stats = node_stats(nodes, labels, [u.interview_id for u in of], [u.session_model for u in of])
    stance_of = {t.theme_id: t.stance for t in now if t.stance}
    sizes = {t.theme_id: t.answers for t in now}
    stances = {n.node_id: node_stance(stance_of, sizes, n.theme_ids) for n in nodes} if stance_of else None
    repository_tree.save_tree(conn, job.job_id, nodes, stats, stances)
    return Outcome({"tree_nodes": len(nodes), "tree_areas": sum(n.kind == "area" for n in nodes), "copied": True})


def understand(conn: psycopg.Connection, job: Job, parts: Components, ext: Extends):
    """Ratings, dimensions, quality and engagement for the new interviews; statistics from stored values."""
    from miner.steps import Outcome, job_statistics, understand_options, understand_part

    if not stored.has_rows(conn, "interview_engagement", ext.previous):
        return None  # a previous job from before the per-interview engagement rows
    answers = stored.load_job_answers_from(conn, job.job_id, ext.answers_from)
    interviews = stored.load_interviews_of_answers(conn, job.job_id, ext.answers_from)
    options = understand_options(job, parts)
    for table in stored.PER_INTERVIEW + ("unit_insights",):
        stored.copy_rows(conn, table, ext.previous, job.job_id)
    estimator = understand_part(conn, job, parts, options, interviews, answers) if answers else None
    if estimator is None:
        row = conn.execute("SELECT rating_estimator FROM insight_runs WHERE job_id = %s", (ext.previous,)).fetchone()
        estimator = row[0] if row else ""
    counts = {**job_statistics(conn, job.job_id, options, estimator), "understood_interviews": len(interviews)}
    return Outcome(counts, counts=counts)

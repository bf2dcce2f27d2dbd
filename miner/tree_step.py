"""The theme tree inside a job: from the job's digest (miner.theme_digest: exact theme centroids and
per-unit refs, a bounded sample of each theme's texts), build and name the tree (miner.tree,
miner.tree_label) and save it (miner.repository_tree). Called by the `tree` step (miner.steps), on
the step's connection and in its transaction."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import psycopg

from miner import repository_jobs, repository_tree
from miner import repository_runs as runs
from miner.opinion_job import node_stance
from miner.records import Job, Unit
from miner.theme_digest import JobDigest
from miner.tree import build_tree, name_nodes, node_stats

logger = logging.getLogger(__name__)


def save_theme_tree(conn: psycopg.Connection, job: Job, digest: JobDigest, components: Any) -> dict[str, Any]:
    """Build, name and store the job's theme tree; returns counts for the step's detail."""
    theme_ids = digest.theme_ids
    centroids = (np.vstack([digest.centroid(t) for t in theme_ids]) if theme_ids
                 else np.zeros((0, digest.dim), dtype=np.float32))
    sizes = [digest.size(t) for t in theme_ids]
    previous_job = repository_jobs.job_plan(conn, job.job_id).previous_job_id
    previous = repository_tree.load_tree(conn, previous_job) if previous_job else []
    nodes = build_tree(theme_ids, centroids, sizes, previous, repository_tree.next_node_numbers(conn, job.study))
    samples = {t: digest.sample(t)[0] for t in theme_ids}  # c-TF-IDF over each theme's sample
    nodes = name_nodes(nodes, {t: [u.answer for u in units] for t, units in samples.items()})
    counts: dict[str, Any] = {}
    if components.llm_client is not None and any(n.kind != "theme" for n in nodes):
        nodes, counts = _llm_names(conn, job, nodes, [u for units in samples.values() for u in units], components)
    del samples
    stats = node_stats(nodes, digest.labels.tolist(), [r.interview_id for r in digest.refs],
                       [r.session_model for r in digest.refs])
    themes = runs.load_themes(conn, job.job_id)
    stance_of = {t.theme_id: t.stance for t in themes if t.stance}
    sizes = {t.theme_id: t.answers for t in themes}
    stances = {n.node_id: node_stance(stance_of, sizes, n.theme_ids) for n in nodes} if stance_of else None
    repository_tree.save_tree(conn, job.job_id, nodes, stats, stances)
    return {"tree_nodes": len(nodes), "tree_areas": sum(n.kind == "area" for n in nodes), **counts}


def _llm_names(conn: psycopg.Connection, job: Job, nodes, units: list[Unit], components: Any):
    from miner.steps import _llm
    from miner.tree_label import label_nodes

    themes = runs.load_themes(conn, job.job_id)
    # The job's LLM (what is left of its token budget) with no repair round: at most one request per
    # parent node, and only while the job's calls per theme (miner.steps.theme_calls_left) last; the
    # rest keep their extractive names.
    llm = _llm(conn, job, components, themes=len(themes), repair_attempts=0)
    answers = {u.unit_id: u.answer for u in units}
    # The LLM's failures are values (its ledger; extractive names kept); an exception is a bug.
    return label_nodes(nodes, themes, answers, llm)

"""The theme tree inside a job: load the job's themes and vectors, build and name the tree
(miner.tree, miner.tree_label) and save it (miner.repository_tree). Called by the `tree` step
(miner.steps), on the step's connection and in its transaction."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import psycopg

from miner import repository, repository_jobs, repository_tree
from miner import repository_runs as runs
from miner.opinion_job import node_stance
from miner.records import Job, Unit
from miner.themes import members_by_theme
from miner.tree import build_tree, centroids_of, name_nodes, node_stats

logger = logging.getLogger(__name__)


def save_theme_tree(conn: psycopg.Connection, job: Job, units: list[Unit], vectors: np.ndarray, labels: np.ndarray,
                    components: Any) -> dict[str, Any]:
    """Build, name and store the job's theme tree; returns counts for the step's detail."""
    theme_ids, centroids, sizes = centroids_of(labels, vectors)
    previous_job = repository_jobs.job_plan(conn, job.job_id).previous_job_id
    previous = repository_tree.load_tree(conn, previous_job) if previous_job else []
    nodes = build_tree(theme_ids, centroids, sizes, previous, repository_tree.next_node_numbers(conn, job.study))
    documents = {t: [units[i].answer for i in members] for t, members in members_by_theme(labels).items()}
    nodes = name_nodes(nodes, documents)
    counts: dict[str, Any] = {}
    if components.llm_client is not None and any(n.kind != "theme" for n in nodes):
        nodes, counts = _llm_names(conn, job, nodes, units, components)
    stats = node_stats(nodes, labels, [u.interview_id for u in units], [u.session_model for u in units])
    themes = runs.load_themes(conn, job.job_id)
    stance_of = {t.theme_id: t.stance for t in themes if t.stance}
    sizes = {t.theme_id: t.answers for t in themes}
    stances = {n.node_id: node_stance(stance_of, sizes, n.theme_ids) for n in nodes} if stance_of else None
    repository_tree.save_tree(conn, job.job_id, nodes, stats, stances)
    return {"tree_nodes": len(nodes), "tree_areas": sum(n.kind == "area" for n in nodes), **counts}


def _llm_names(conn: psycopg.Connection, job: Job, nodes, units: list[Unit], components: Any):
    from miner.llm import LLM, LLMOptions, PostgresStore
    from miner.tree_label import label_nodes

    options = components.llm_options or LLMOptions(model="")
    budget = job.params.get("token_budget", options.token_budget)
    if budget is not None:  # one budget per job: what earlier steps spent is gone
        budget = max(0, budget - sum(row["billed_tokens"] for row in repository.llm_cost(conn, job.job_id)))
    # No repair round: at most one request per parent node.
    llm = LLM(components.llm_client, replace(options, repair_attempts=0),
              PostgresStore(conn, job.job_id), token_budget=budget)
    answers = {u.unit_id: u.answer for u in units}
    # The LLM's failures are values (its ledger; extractive names kept); an exception is a bug.
    return label_nodes(nodes, runs.load_themes(conn, job.job_id), answers, llm)

"""LLM names for the theme tree's areas and groups: at most one request per parent node, showing
the labels of its themes (LLM labels only: extractive ones are derived from unscrubbed text) and a
few of their representative answers, scrubbed. A node whose request fails keeps its extractive
name. Same safety rules as miner.llm_label: answers are untrusted data inside a JSON document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace

from pydantic import BaseModel, ConfigDict, field_validator

from miner.label_guard import check_label, label_problem
from miner.llm import LLM, JsonRequest
from miner.llm_label import UNTRUSTED_DATA_NOTE
from miner.records import Theme
from miner.scrub import scrub_text
from miner.tree import TreeNode

logger = logging.getLogger(__name__)

THEMES_SHOWN = 12          # largest themes of a node shown to the LLM
ANSWERS_PER_THEME = 2

AREA_PROMPT = (
    "You name groups of opinion themes from interviews where people said what they think of AI "
    "assistants they used. The user message is a JSON document: \"themes\" are the themes of one group, "
    "largest first, each with its label (when known) and representative answers.\n"
    + UNTRUSTED_DATA_NOTE + "\n"
    "Reply with one JSON object: \"label\": at most 8 words naming what the group's themes are about."
)


class AreaLabelReply(BaseModel):
    """What the LLM may say about one area or group."""

    model_config = ConfigDict(extra="forbid")
    label: str

    @field_validator("label")
    @classmethod
    def _short_label(cls, label: str) -> str:
        return check_label(label)


def label_nodes(nodes: Sequence[TreeNode], themes: Sequence[Theme], answers: Mapping[str, str],
                llm: LLM) -> tuple[list[TreeNode], dict[str, int]]:
    """LLM names for the parent nodes; `answers` maps unit id → answer text (the themes' quotes).

    Returns the nodes (renamed where the LLM delivered) and counts. Give it an LLM with
    `repair_attempts=0` to hold each parent to one request (plus transport retries).
    """
    by_theme = {t.theme_id: t for t in themes}
    llm_labelled = {t.theme_id for t in themes if t.labeller.startswith("llm")}
    parents = [n for n in nodes if n.kind != "theme"]
    requests, shown = [], []
    for node in parents:
        listed, quoted = [], []
        for theme_id in node.theme_ids[:THEMES_SHOWN]:
            theme = by_theme.get(theme_id)
            if theme is None:
                continue
            texts = [scrub_text(answers[u]) for u in theme.quote_unit_ids[:ANSWERS_PER_THEME] if u in answers]
            quoted += [(f"t{theme_id}a{i}", text) for i, text in enumerate(texts)]
            listed.append({"label": theme.label if theme_id in llm_labelled else None,
                           "answers": [{"id": f"t{theme_id}a{i}", "text": text} for i, text in enumerate(texts)]})
        data = {"themes": listed}
        messages = ({"role": "system", "content": AREA_PROMPT},
                    {"role": "user", "content": json.dumps(data, ensure_ascii=False, indent=1)})
        requests.append(JsonRequest("tree", messages, AreaLabelReply,
                                    check=lambda reply, q=quoted: label_problem(reply.label, q)))
        shown.append(node.node_id)
    if not requests:
        return list(nodes), {"tree_llm_labels": 0, "tree_llm_failed": 0}
    results = llm.complete_json(requests)
    renamed = {node_id: result.reply.label for node_id, result in zip(shown, results) if result.ok}
    labeller = f"llm:{llm.options.model}"
    out = [replace(n, label=renamed[n.node_id], labeller=labeller) if n.node_id in renamed else n for n in nodes]
    counts = {"tree_llm_labels": len(renamed), "tree_llm_failed": len(requests) - len(renamed)}
    logger.info("tree: %d of %d parent nodes named by %s", len(renamed), len(requests), labeller)
    return out, counts

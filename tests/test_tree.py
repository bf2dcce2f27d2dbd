"""The theme tree: themes grouped into 5–12 areas (a middle level for big studies) from their
centroids, ids that survive re-runs, names from c-TF-IDF or an LLM (one request per parent), and
reporting.theme_tree / theme_tree_by_model under the privacy threshold."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import openai
import psycopg
import pytest

from miner import repository_reporting, repository_tree
from miner.llm import LLM, LLMOptions, MemoryStore
from miner.records import Theme
from miner.tree import (MAX_AREAS, MIN_AREAS, area_count, build_tree, centroids_of, name_nodes, node_stats)
from miner.tree_label import label_nodes
from openai_server import OpenAIServer, request_data, schema_name, smart_reply
from reporting_study import STUDY, analysed_study


def planted(groups: int, per_group: int, dim: int = 24, seed: int = 0) -> tuple[list[int], np.ndarray, list[int], list[int]]:
    """Theme centroids around `groups` well separated directions; returns ids, centroids, sizes, gold group."""
    rng = np.random.default_rng(seed)
    axes = np.linalg.qr(rng.normal(size=(dim, dim)))[0][:groups]
    gold = [g for g in range(groups) for _ in range(per_group)]
    centroids = np.vstack([axes[g] + 0.15 * rng.normal(size=dim) / np.sqrt(dim) for g in gold])
    ids = [int(i) for i in rng.permutation(1000)[: len(gold)]]
    sizes = [int(s) for s in rng.integers(5, 60, size=len(gold))]
    return ids, centroids, sizes, gold


def areas_of(nodes) -> dict[int, str]:
    """Theme id → the id of its top-level area."""
    area = {}
    for node in nodes:
        if node.kind == "area":
            area.update({t: node.node_id for t in node.theme_ids})
    return area


def test_area_count_stays_within_five_to_twelve_for_real_study_sizes():
    assert [area_count(n) for n in (0, 1, 4, 9)] == [0, 1, 2, 4]  # small studies: two themes an area
    for n in range(10, 1001):
        assert MIN_AREAS <= area_count(n) <= MAX_AREAS


def test_planted_groups_become_the_areas():
    ids, centroids, sizes, gold = planted(groups=8, per_group=4)
    nodes = build_tree(ids, centroids, sizes, areas=8)
    area = areas_of(nodes)
    found = {frozenset(t for t in ids if area[t] == a) for a in set(area.values())}
    expected = {frozenset(t for t, g in zip(ids, gold) if g == group) for group in range(8)}
    assert found == expected
    # Every theme is exactly one leaf, under its own area; parents come before their children.
    leaves = [n for n in nodes if n.kind == "theme"]
    assert sorted(n.theme_id for n in leaves) == sorted(ids)
    seen = set()
    for node in nodes:
        assert node.parent_id is None or node.parent_id in seen
        seen.add(node.node_id)


def test_big_study_gets_a_middle_level_that_nests_inside_the_areas():
    ids, centroids, sizes, _ = planted(groups=10, per_group=9)
    nodes = build_tree(ids, centroids, sizes)
    by_id = {n.node_id: n for n in nodes}
    groups = [n for n in nodes if n.kind == "group"]
    assert groups, "90 themes should get a middle level"
    for group in groups:
        parent = by_id[group.parent_id]
        assert parent.kind == "area" and set(group.theme_ids) < set(parent.theme_ids)
        assert len(group.theme_ids) > 1
        assert all(by_id[f"theme:{t}"].parent_id == group.node_id for t in group.theme_ids)
        assert group.level == 2 and all(by_id[f"theme:{t}"].level == 3 for t in group.theme_ids)
    assert MIN_AREAS <= sum(n.kind == "area" for n in nodes) <= MAX_AREAS
    small = build_tree(*planted(groups=5, per_group=6)[:3])
    assert not [n for n in small if n.kind == "group"]  # 30 themes: areas → themes


def test_area_ids_carry_over_when_most_of_their_themes_do():
    ids, centroids, sizes, _ = planted(groups=6, per_group=5)
    first = build_tree(ids, centroids, sizes, areas=6)
    # Next run: one theme retired, two new ones near area 0's themes, the input in another order.
    rng = np.random.default_rng(1)
    order = rng.permutation(len(ids))[1:]
    near = centroids[0] + 0.01 * rng.normal(size=centroids.shape[1])
    ids2 = [ids[i] for i in order] + [5000, 5001]
    centroids2 = np.vstack([centroids[order], near, near])
    second = build_tree(ids2, centroids2, [sizes[i] for i in order] + [10, 10], previous=first, areas=6,
                        next_numbers={"area": 40})
    before, after = areas_of(first), areas_of(second)
    assert {after[t] for t in ids2 if t in before} <= set(before.values())
    assert all(after[t] == before[t] for t in ids2 if t in before)
    assert after[5000] == before[ids[0]]
    # A fresh run without history numbers areas from next_numbers.
    fresh = build_tree(ids, centroids, sizes, areas=6, next_numbers={"area": 40})
    assert sorted(n.number for n in fresh if n.kind == "area") == list(range(40, 46))


def test_the_same_input_gives_the_same_tree():
    ids, centroids, sizes, _ = planted(groups=7, per_group=7)
    assert build_tree(ids, centroids, sizes) == build_tree(ids, centroids, sizes)


def test_extractive_names_come_from_the_areas_answers():
    ids, centroids, sizes, gold = planted(groups=2, per_group=3)
    words = ["refund delayed money", "card declined payment"]
    documents = {t: [words[g]] * 3 for t, g in zip(ids, gold)}
    nodes = name_nodes(build_tree(ids, centroids, sizes, areas=2), documents)
    areas = [n for n in nodes if n.kind == "area"]
    for area in areas:
        group = gold[ids.index(area.theme_ids[0])]
        assert set(area.label.split(" / ")) <= set(words[group].split()) | {w for w in words[group].split()}
        assert area.keywords and area.labeller == "extractive"
    assert all(n.label == "" for n in nodes if n.kind == "theme")


def test_node_counts_overall_and_per_model():
    ids, centroids, sizes, _ = planted(groups=2, per_group=2)
    nodes = build_tree(ids[:4], centroids[:4], sizes[:4], areas=2)
    # Units: theme, interview, model. Interview i1 answers twice in one theme; one unit is unthemed.
    units = [(ids[0], "i1", "a"), (ids[0], "i1", "a"), (ids[1], "i2", "b"), (ids[2], "i3", "a"), (-1, "i4", "b")]
    stats = node_stats(nodes, [u[0] for u in units], [u[1] for u in units], [u[2] for u in units])
    by_key = {(s.node_id, s.session_model): s for s in stats}
    leaf = by_key[(f"theme:{ids[0]}", None)]
    assert (leaf.answers, leaf.interviews) == (2, 1)
    cell = by_key[(f"theme:{ids[0]}", "a")]
    assert (cell.answers, cell.interviews, cell.share, cell.prevalence) == (2, 1, 2 / 3, 1 / 2)
    assert by_key[(f"theme:{ids[0]}", "b")].answers == 0  # every model gets a row, zeros included
    for area in (n for n in nodes if n.kind == "area"):
        total = by_key[(area.node_id, None)]
        assert total.answers == sum(by_key[(f"theme:{t}", None)].answers for t in area.theme_ids)


def test_centroids_of_skips_unassigned_answers():
    labels = np.array([0, 0, -1, 3])
    vectors = np.array([[1.0, 0], [0, 1.0], [5, 5], [2, 2]])
    ids, centroids, sizes = centroids_of(labels, vectors)
    assert ids == [0, 3] and sizes == [2, 1]
    assert np.allclose(centroids, [[0.5, 0.5], [2, 2]])


def _themes_for(nodes, llm_labelled: bool) -> tuple[list[Theme], dict[str, str]]:
    themes, answers = [], {}
    for node in nodes:
        if node.kind == "theme":
            unit = f"u{node.theme_id}"
            answers[unit] = f"mail me at jane.doe@example.com about refunds {node.theme_id}"
            themes.append(Theme(node.theme_id, f"Refund theme {node.theme_id}", ("refund",),
                                "llm:m" if llm_labelled else "extractive", 10, 5, (unit,)))
    return themes, answers


def test_llm_names_each_parent_with_one_request_and_sees_only_scrubbed_text():
    ids, centroids, sizes, _ = planted(groups=10, per_group=6)
    nodes = name_nodes(build_tree(ids, centroids, sizes), {t: ["refund money"] for t in ids})
    themes, answers = _themes_for(nodes, llm_labelled=False)
    seen = []

    def reply(body):
        if schema_name(body) == "AreaLabelReply":
            data = request_data(body)
            seen.append(data)
            return {"label": f"Refund questions ({len(data['themes'])} themes)"}
        return smart_reply(body)

    with OpenAIServer(reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        llm = LLM(client, LLMOptions(model="m", repair_attempts=0), MemoryStore())
        named, counts = label_nodes(nodes, themes, answers, llm)
        requests = server.request_count
    parents = [n for n in nodes if n.kind != "theme"]
    assert requests == len(parents) == counts["tree_llm_labels"]
    assert all(n.labeller == "llm:m" and n.label.startswith("Refund questions") for n in named if n.kind != "theme")
    text = json.dumps(seen)
    assert "jane.doe@example.com" not in text and "[email]" in text
    assert "Refund theme" not in text  # extractive theme labels come from unscrubbed text: not sent


def test_llm_failure_keeps_the_extractive_names():
    ids, centroids, sizes, _ = planted(groups=5, per_group=4)
    nodes = name_nodes(build_tree(ids, centroids, sizes), {t: ["refund money"] for t in ids})
    themes, answers = _themes_for(nodes, llm_labelled=True)
    with OpenAIServer(lambda body: {"label": "one two three four five six seven eight nine ten"}) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        llm = LLM(client, LLMOptions(model="m", repair_attempts=0), MemoryStore())
        named, counts = label_nodes(nodes, themes, answers, llm)
        assert server.request_count == sum(n.kind != "theme" for n in nodes)  # no repair round
    assert named == nodes and counts["tree_llm_labels"] == 0


# --- the views, on the analysed sample study shared with the reporting tests -------------------

@pytest.fixture(scope="module")
def jobs(database_url, settings, embedder):
    return analysed_study(database_url, settings, embedder)


def test_theme_tree_view_covers_every_theme_once(jobs, conn):
    tree = repository_reporting.read_view(conn, "theme_tree", STUDY)
    themes = repository_reporting.read_view(conn, "themes", STUDY)
    leaves = [r for r in tree if r["kind"] == "theme"]
    assert sorted(r["theme_id"] for r in leaves) == sorted(t["theme_id"] for t in themes)
    areas = [r for r in tree if r["level"] == 1]
    assert 1 < len(areas) <= MAX_AREAS and all(r["parent_id"] is None for r in areas)
    by_id = {r["node_id"]: r for r in tree}
    label_of = {t["theme_id"]: t["label"] for t in themes}
    for row in leaves:
        assert row["label"] == label_of[row["theme_id"]]  # a leaf shows its theme's (LLM) label
        assert by_id[row["parent_id"]]["level"] == row["level"] - 1
    stance_of = {t["theme_id"]: t["stance"] for t in themes}
    for row in tree:  # a leaf has its theme's stance; a parent the stance of most answers under it, or mixed
        if row["kind"] == "theme":
            assert row["stance"] == stance_of[row["theme_id"]]
        elif not row["suppressed"]:
            assert row["stance"] in ("positive", "negative", "neutral", "mixed")
    assert [r["position"] for r in tree] == sorted(r["position"] for r in tree)


def test_stance_columns_follow_the_units_stances_as_the_contract_states(jobs, conn):
    """themes.stance: the side of ≥ 60% of the units that take one, once ≥ 30% do (neutral also for a
    theme of chatter); a parent's: the stance of ≥ 60% of its answers, each with its theme's stance."""
    units = conn.execute(
        """SELECT a.theme_id, count(*), count(*) FILTER (WHERE u.stance = 'positive'),
                  count(*) FILTER (WHERE u.stance = 'negative')
           FROM assignments a JOIN units u USING (unit_id) WHERE a.job_id = %s AND a.theme_id >= 0
           GROUP BY a.theme_id""", (jobs[-1],)).fetchall()
    themes = {t["theme_id"]: t for t in repository_reporting.read_view(conn, "themes", STUDY) if not t["suppressed"]}
    for theme_id, total, positive, negative in units:
        if theme_id not in themes:
            continue
        polar = positive + negative
        side, count = max((("positive", positive), ("negative", negative)), key=lambda s: s[1])
        want = "neutral" if polar < 0.3 * total else side if count >= 0.6 * polar else "mixed"
        assert themes[theme_id]["stance"] in (want, "neutral"), (theme_id, total, positive, negative)
    tree = repository_reporting.read_view(conn, "theme_tree", STUDY)
    sizes = dict(conn.execute("SELECT theme_id, answers FROM themes WHERE job_id = %s", (jobs[-1],)).fetchall())
    stance_of = {t: conn.execute("SELECT stance FROM themes WHERE job_id = %s AND theme_id = %s",
                                 (jobs[-1], t)).fetchone()[0] for t in sizes}
    under = dict(conn.execute("SELECT node_id, theme_ids FROM tree_nodes WHERE job_id = %s", (jobs[-1],)).fetchall())
    for node in tree:
        if node["kind"] == "theme" or node["suppressed"]:
            continue
        weights = Counter()
        for theme in under[node["node_id"]]:
            weights[stance_of[theme] or "neutral"] += sizes[theme]
        side, weight = weights.most_common(1)[0]
        assert node["stance"] == (side if weight >= 0.6 * sum(weights.values()) else "mixed"), node


def test_tree_by_model_suppresses_what_theme_by_model_suppresses(jobs, conn):
    k = repository_reporting.min_interviews_per_cell(conn)
    cells = repository_reporting.read_view(conn, "theme_tree_by_model", STUDY)
    theme_cells = {(c["theme_id"], c["session_model"]): c["suppressed"]
                   for c in repository_reporting.read_view(conn, "theme_by_model", STUDY)}
    raw = {(n, m): i for n, m, i in conn.execute(
        "SELECT node_id, session_model, interviews FROM tree_node_model_stats WHERE job_id = %s", (jobs[-1],))}
    assert cells
    for cell in cells:
        if cell["kind"] == "theme":
            assert cell["suppressed"] == theme_cells[(cell["theme_id"], cell["session_model"])]
        if 0 < raw[(cell["node_id"], cell["session_model"])] < k:
            assert cell["suppressed"]
        if cell["suppressed"]:
            assert cell["answers"] is None and cell["share"] is None and cell["prevalence"] is None
    assert any(c["suppressed"] for c in cells) and not all(c["suppressed"] for c in cells)


def test_raising_k_withholds_small_nodes_labels(jobs, database_url):
    with psycopg.connect(database_url) as conn:
        repository_reporting.set_min_interviews_per_cell(conn, 10_000)
        tree = repository_reporting.read_view(conn, "theme_tree", STUDY)
        conn.rollback()
    assert tree and all(r["suppressed"] and r["label"] is None and r["answers"] is None for r in tree)


def test_nightly_run_keeps_the_area_ids(jobs, conn):
    first, second = (repository_tree.load_tree(conn, job) for job in jobs[:2])
    before, after = areas_of(first), areas_of(second)
    kept = [t for t in after if t in before]
    assert kept and Counter(after[t] == before[t] for t in kept)[True] >= 0.8 * len(kept)
    # Numbers never reused: a new area gets a number above every earlier one.
    old_numbers = {n.number for n in first if n.kind == "area"}
    for node in second:
        if node.kind == "area" and node.node_id not in before.values():
            assert node.number > max(old_numbers)


def test_transcripts_are_scrubbed_cut_and_numbered_like_units():
    from miner.report import _json_script
    from miner.report_tree import TURN_CHARS, scrubbed_transcripts

    raw = {"i1": {"session_model": "m", "session": [{"role": "user", "content": [{"text": "call +1 415 555 0100"}]},
                                                   {"role": "assistant", "content": "x" * (TURN_CHARS + 50)}],
                  "interview": [{"role": "assistant", "content": "How was it?"}, {"role": "user", "content": ""},
                                {"role": "assistant", "content": "Anything else?"},
                                {"role": "user", "content": "mail jane.doe@example.com </script><b>"}]}}
    out = scrubbed_transcripts(raw)["i1"]
    assert "555" not in out["session"][0]["text"] and "[phone]" in out["session"][0]["text"]
    assert len(out["session"][1]["text"]) <= TURN_CHARS + 2
    answers = [t for t in out["interview"] if t["role"] == "user"]
    assert [t["answer_index"] for t in answers] == [0, 1]  # an empty answer still counts, as in units
    assert "[email]" in answers[1]["text"] and "jane.doe" not in answers[1]["text"]
    embedded = str(_json_script(out))
    assert "</script>" not in embedded and json.loads(embedded)["interview"][3]["text"].endswith("</script><b>")

"""Opinion units read by an LLM (miner/llm_units.py): each quote is validated as a span of its answer
(offsets kept, case and whitespace normalised, scrubbing placeholders allowed); in a job against a
scripted OpenAI-protocol server, units come from the one call per interview with the LLM's stance,
an answer whose quote is not a span and an interview whose reply is malformed fall back to the
offline splitter and are counted, an answer the LLM finds no opinion in is counted as such, themes
are published with their stance and LLM labels confirm it, and the calls stay within
1 per interview + 2 per theme."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import openai
import psycopg
import pytest
from psycopg.rows import dict_row

from miner import pipeline, repository_jobs, steps
from miner.components import Components
from miner.llm import LLMOptions
from miner.llm_units import locate_quote, quoted_units
from miner.opinion_units import QuoteError, is_no_opinion
from miner.records import Unit
from miner.sample import generate_sample
from miner.settings import Settings
from miner.units import answer_hash
from openai_server import Fault, OpenAIServer, is_repair, request_data, schema_name, scripted_stance, smart_reply
from test_llm_label import KMeansClusterer, ingest

INTERVIEWS = 24
THEMES = 5
STUDY = "llm-units"


def answer(text: str, unit_id: str = "iv1:0") -> Unit:
    return Unit(unit_id, "iv1", "s", "m", 0, "What did you think?", text, answer_hash(text))


def test_a_quote_is_found_with_case_whitespace_and_placeholders_normalised():
    text = "Quick replies,  but it MADE UP the sources. Mail me at jo@example.com please."
    span = locate_quote(text, "it made up the sources")
    assert text[span.start:span.end] == "it MADE UP the sources"
    span = locate_quote(text, "“mail me at [email] please.”")  # the model saw the scrubbed text
    assert text[span.start:span.end] == "Mail me at jo@example.com please"
    for invented in ("it invented the sources", "quick replies and sources", "[email] [phone]"):
        with pytest.raises(QuoteError):
            locate_quote(text, invented)


def test_quoted_units_keep_offsets_and_stance_and_drop_bare_ratings():
    whole = answer("Quick replies, but it made up the sources. 4 out of 5.")
    units = quoted_units(whole, [("it made up the sources", "negative"), ("Quick replies", "positive"),
                                 ("4 out of 5", "positive"), ("it made up  the sources", "negative")])
    assert [(u.answer, u.stance, u.source) for u in units] == [
        ("Quick replies", "positive", "llm"), ("it made up the sources", "negative", "llm")]
    for unit in units:
        assert whole.answer[unit.span_start:unit.span_end] == unit.answer == unit.full_answer[unit.span_start:unit.span_end]
        assert unit.unit_id == f"iv1:0:q{unit.span_start}-{unit.span_end}" and unit.answer_unit_id == "iv1:0"
        assert unit.answer_hash == answer_hash(unit.answer)
    with pytest.raises(QuoteError):
        quoted_units(whole, [("Quick replies", "positive"), ("it was slow", "negative")])


@pytest.fixture(scope="module")
def llm_job(database_url, embedder):
    """A sample study analysed end to end with a scripted reader: interview 1 gets one quote that is
    not a span of its answer, interview 2 a malformed reply, interview 3 "no opinion" for an answer
    the offline detector would theme. Yields (job id, counts, server requests, the three ids).
    The units and understand steps work in parts of 7 and 5 interviews here (5,000 in the product),
    so the readings are written and read back across parts."""
    samples = generate_sample(INTERVIEWS, seed=3)
    scripted: dict[str, str] = {}

    def reader(body: dict) -> dict:
        reply = smart_reply(body)
        if schema_name(body) != "InterviewReadingReply":
            return reply
        for asked in request_data(body)["answers"]:
            entry = next(q for q in reply["questions"] if q["id"] == asked["id"])
            if asked["answer"] == scripted["paraphrase"]:  # one quote the answer does not hold
                entry["opinions"] = [*entry["opinions"], {"quote": "the assistant was a total disaster",
                                                          "stance": "negative"}]
            elif asked["answer"] == scripted["silent"]:  # no opinion, says the model
                entry["opinions"] = []
        return reply

    # The three answers picked by text: the request carries them as they are (the sample has no
    # identifiers to scrub).
    texts = [[t["content"] for t in s.record["interview"] if t["role"] == "user"] for s in samples]
    seen = Counter(t for ts in texts for t in ts)
    suitable = [[t for t in ts if len(t.split()) >= 6 and not is_no_opinion(t) and seen[t] == 1] for ts in texts]
    pick = [ts[0] for ts in suitable if ts][:3]  # in three different interviews
    scripted["paraphrase"], malformed_text, scripted["silent"] = pick
    with psycopg.connect(database_url) as conn:
        ingest(conn, STUDY, [s.record for s in samples])

    with OpenAIServer(reader) as server, psycopg.connect(database_url) as conn:
        server.add_fault(Fault(content='{"questions": [{"id": "a1", "dimension": '), times=None,
                         when=lambda body: schema_name(body) == "InterviewReadingReply"
                         and any(a["answer"] == malformed_text for a in request_data(body)["answers"]))
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        parts = Components.from_settings(Settings(), embedder=embedder, clusterer=KMeansClusterer(THEMES),
                                         llm_client=client,
                                         llm_options=LLMOptions(model="m-units", max_retries=0, backoff_initial=0.01))
        job_id = repository_jobs.create_job(conn, STUDY)
        conn.commit()
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(steps, "UNITS_INTERVIEWS", 7)
            patch.setattr(steps, "UNDERSTAND_INTERVIEWS", 5)
            pipeline.run_job(conn, job_id, parts)
        job = repository_jobs.get_job(conn, job_id)
        assert job.status == "succeeded", job.error
        yield job_id, job.counts, list(server.requests), pick


def _units(conn, job_id: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("""SELECT u.* FROM job_units j JOIN units u USING (unit_id)
                              WHERE j.job_id = %s ORDER BY j.position""", (job_id,)).fetchall()


def _answers(conn, job_id: str) -> list[dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("""SELECT u.*, j.no_opinion FROM job_answers j JOIN units u USING (unit_id)
                              WHERE j.job_id = %s ORDER BY j.position""", (job_id,)).fetchall()


def test_llm_units_are_spans_with_offsets_and_the_llms_stance(conn, llm_job):
    job_id, counts, _, _ = llm_job
    units = [u for u in _units(conn, job_id) if u["source"] == "llm"]
    assert len(units) == counts["llm_units"] > 0
    for unit in units:
        assert unit["full_answer"][unit["span_start"]:unit["span_end"]] == unit["answer"]
        assert unit["unit_id"] == f"{unit['answer_unit_id']}:q{unit['span_start']}-{unit['span_end']}"
        # What the scripted model said, kept through the cluster step's offline stance estimate.
        assert unit["stance"] == scripted_stance(unit["answer"]), unit
    assert {u["stance"] for u in units} == {"positive", "negative", "neutral"}


def test_answers_whose_reading_fails_are_split_offline_and_counted(conn, llm_job):
    job_id, counts, _, (paraphrased, malformed, _) = llm_job
    answers = _answers(conn, job_id)
    units = _units(conn, job_id)
    by_answer: dict[str, list[dict]] = {}
    for unit in units:
        by_answer.setdefault(unit["answer_unit_id"], []).append(unit)
    malformed_interview = next(a["interview_id"] for a in answers if a["answer"] == malformed)
    in_malformed = [a for a in answers if a["interview_id"] == malformed_interview]
    assert counts["llm_fallback_not_a_span"] == 1
    assert counts["llm_fallback_no_reply"] == len(in_malformed)
    assert counts["llm_fallback_answers"] == 1 + len(in_malformed) + counts["llm_fallback_too_long"]
    assert counts["llm_read_answers"] + counts["llm_fallback_answers"] == len(answers)
    offline = {a["unit_id"] for a in in_malformed} | {a["unit_id"] for a in answers if a["answer"] == paraphrased}
    for answer_id in offline:
        assert all(u["source"] == "split" and re.fullmatch(rf"{re.escape(answer_id)}:\d+", u["unit_id"])
                   for u in by_answer.get(answer_id, []))
    assert by_answer[next(a["unit_id"] for a in answers if a["answer"] == paraphrased)]  # never lost
    # No answer lost: each one has units or is counted as carrying no opinion.
    assert all(a["no_opinion"] != bool(by_answer.get(a["unit_id"])) for a in answers)
    # The malformed interview is rated offline; the others by the LLM.
    sources = dict(conn.execute("""SELECT interview_id, array_agg(DISTINCT source) FROM interview_ratings
                                   WHERE job_id = %s GROUP BY 1""", (job_id,)).fetchall())
    assert "llm" not in sources[malformed_interview]
    assert sum("llm" in s for s in sources.values()) == INTERVIEWS - 1


def test_an_answer_the_llm_finds_no_opinion_in_is_counted_not_themed(conn, llm_job):
    job_id, counts, _, (_, _, silent) = llm_job
    [row] = [a for a in _answers(conn, job_id) if a["answer"] == silent]
    assert row["no_opinion"] and not is_no_opinion(silent)  # the LLM's call, not the offline detector's
    assert counts["llm_no_opinion"] >= 1 and counts["no_opinion"] >= counts["llm_no_opinion"]
    study_rows = conn.execute("SELECT count(*) FROM reporting.no_opinion WHERE study = %s AND job_id = %s",
                              (STUDY, job_id)).fetchone()[0]
    assert study_rows >= 1


def test_themes_are_published_with_a_stance_the_llm_labels_confirm(conn, llm_job):
    job_id, counts, _, _ = llm_job
    with conn.cursor(row_factory=dict_row) as cur:
        themes = cur.execute("""SELECT t.theme_id, t.label, t.labeller, t.stance, o.polarity FROM themes t
                                LEFT JOIN theme_opinions o USING (job_id, theme_id) WHERE t.job_id = %s""",
                             (job_id,)).fetchall()
        published = cur.execute("SELECT theme_id, stance, suppressed FROM reporting.themes WHERE study = %s",
                                (STUDY,)).fetchall()
    assert themes and {t["theme_id"] for t in themes} == {p["theme_id"] for p in published}
    assert all(p["stance"] in ("positive", "negative", "mixed", "neutral") for p in published if not p["suppressed"])
    assert {t["stance"] for t in themes} & {"positive", "negative"}
    for theme in themes:
        assert theme["labeller"] == "llm:m-units", theme
        if theme["stance"] in ("positive", "negative"):
            assert theme["polarity"] == theme["stance"], theme


def test_calls_stay_one_per_interview_and_two_per_theme(conn, llm_job):
    """The whole job's calls, the tree included: one reading per interview (none re-asked, the
    malformed one included; extraction adds no call), then at most two per theme for everything
    else: one request per theme gives its label, summary, polarity and per-model sentences, and
    re-asks, duplicate relabels and the tree's area names share what is left (miner.steps.theme_calls_left)."""
    job_id, counts, requests, _ = llm_job
    asked = Counter(schema_name(b) for b in requests)
    assert asked["InterviewReadingReply"] == INTERVIEWS == counts["rate_llm_calls"]
    assert not any(is_repair(b) for b in requests if schema_name(b) == "InterviewReadingReply")
    readings = {json.dumps(request_data(b), sort_keys=True) for b in requests if schema_name(b) == "InterviewReadingReply"}
    assert len(readings) == INTERVIEWS
    themes = counts["themes"]
    first_asks = [b for b in requests if schema_name(b) == "ThemeLabelReply" and not is_repair(b)]
    assert len(first_asks) == themes  # one request per theme, sentences included
    assert any(request_data(b)["models"] for b in first_asks)
    parents = conn.execute("SELECT count(*) FROM tree_nodes WHERE job_id = %s AND kind <> 'theme'",
                           (job_id,)).fetchone()[0]
    assert 0 < asked["AreaLabelReply"] <= parents, asked
    assert set(asked) <= {"InterviewReadingReply", "ThemeLabelReply", "DistinctLabelsReply", "AreaLabelReply"}
    assert len(requests) <= INTERVIEWS + 2 * themes, asked
    ledger = dict(conn.execute("""SELECT purpose, count(*) FROM llm_calls WHERE job_id = %s AND NOT cache_hit
                                  AND outcome NOT IN ('budget', 'unavailable') GROUP BY 1""", (job_id,)).fetchall())
    assert ledger["rate"] == INTERVIEWS and sum(ledger.values()) == len(requests)
    sentences = conn.execute("SELECT count(*) FROM theme_sentences WHERE job_id = %s", (job_id,)).fetchone()[0]
    assert sentences > 0


def test_the_theme_calls_run_out_into_extractive_names_and_a_count():
    """A call budget spent: the calls that do not fit are not sent; they end 'budget' in the ledger
    and their themes or areas keep extractive names (miner.llm.LLM call_budget)."""
    from miner.llm import LLM, MemoryStore
    from miner.llm_label import label_themes

    themes, units, vectors, labels = _label_fixture()
    with OpenAIServer(smart_reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        llm = LLM(client, LLMOptions(model="m-calls", max_retries=0), MemoryStore(), call_budget=1)
        result = label_themes(themes, units, vectors, labels, [], llm)
        assert server.request_count == 1
    assert sorted(t.labeller for t in result.themes) == ["extractive", "llm:m-calls"]
    assert {o.fallback for o in result.opinions} == {None, "budget"}
    assert result.counts["llm_budget"] == 1 and result.counts["llm_call_budget"] == 1
    assert result.counts["llm_call_budget_spent"] is True


def _label_fixture():
    from miner.records import Theme

    texts = ["it made up the sources for my essay", "the citations were invented", "fake references again",
             "sometimes sources were fine, sometimes not", "mixed bag on the references", "sources okay-ish"]
    units = [Unit(f"iv{n}:0:0", f"iv{n}", "s", "m", 0, "Q?", t, answer_hash(t)) for n, t in enumerate(texts)]
    vectors = np.eye(6, dtype=np.float32) + 0.5
    labels = np.array([0, 0, 0, 1, 1, 1])
    themes = [Theme(0, "made up sources", (), "extractive", 3, 3, stance="negative"),
              Theme(1, "sources okay", (), "extractive", 3, 3, stance="mixed")]
    return themes, units, vectors / np.linalg.norm(vectors, axis=1, keepdims=True), labels


@pytest.mark.parametrize("learns", [True, False])
def test_an_llm_label_must_confirm_a_theme_of_praise_or_complaint(learns):
    """"Made-up sources", negative: a label for a negative theme that comes back positive is asked again
    with the stance named, and a model that keeps disagreeing leaves the theme its extractive phrase."""
    from miner.llm import LLM, MemoryStore
    from miner.llm_label import label_themes

    def reply(body: dict) -> dict:
        if is_repair(body) and learns:
            stance = request_data(body)["stance"]
            return {"label": "Made-up sources", "summary": "People say the sources were invented.",
                    "polarity": stance if stance in ("positive", "negative") else "mixed", "sentences": []}
        return {"label": "Sources", "summary": "People talk about sources.", "polarity": "positive", "sentences": []}

    themes, units, vectors, labels = _label_fixture()
    with OpenAIServer(reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        llm = LLM(client, LLMOptions(model="m-stance", max_retries=0), MemoryStore())
        result = label_themes(themes, units, vectors, labels, [], llm)
        asked = [(request_data(b)["stance"], is_repair(b)) for b in server.requests
                 if schema_name(b) == "ThemeLabelReply"]
    assert sorted(asked) == [("mixed", False), ("negative", False), ("negative", True)]
    negative, mixed = result.themes
    [repair] = [b for b in server.requests if is_repair(b)]
    assert "negative" in repair["messages"][-1]["content"]  # the error names the stance to confirm
    opinions = {o.theme_id: o for o in result.opinions}
    if learns:
        assert (negative.label, opinions[0].polarity, negative.labeller) == ("Made-up sources", "negative", "llm:m-stance")
    else:
        assert (negative.label, negative.labeller, opinions[0].fallback) == ("made up sources", "extractive", "invalid")
    # A mixed theme takes the label and polarity the model gives.
    assert (mixed.label, opinions[1].polarity, mixed.labeller) == ("Sources", "positive", "llm:m-stance")

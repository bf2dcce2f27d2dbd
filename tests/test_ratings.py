"""Ratings: the explicit-rating parser, the offline estimator, and the one-call-per-interview LLM path."""

from __future__ import annotations

import json

import numpy as np
import openai
import pytest

from conftest import needs_shared_data
from miner.dimensions import PrototypeClassifier, classify_questions
from miner.ingest import to_interview
from miner.llm import LLM, LLMOptions, PostgresStore
from miner.ratings import AnchorSentiment, asks_for_rating, parse_rating, question_scale, rate_interviews
from miner.sample import generate_sample
from miner.understand import understand_interviews
from miner.units import split_units
from openai_server import Fault, OpenAIServer, request_data, schema_name

# (answer, scale the question asked for, answer to a rating question?, expected 1-5 score or None)
PHRASINGS = [
    ("4", 5, True, 4.0),
    ("4/5", 5, True, 4.0),
    ("4 / 5", 5, True, 4.0),
    ("four out of five", 5, True, 4.0),
    ("Four out of 5", 5, True, 4.0),
    ("3 out of five", 5, True, 3.0),
    ("a solid 8 out of 10", 5, True, 1 + 4 * 7 / 9),
    ("8/10", 5, True, 1 + 4 * 7 / 9),
    ("10/10 would use again", 5, True, 5.0),
    ("1/10", 5, True, 1.0),
    ("between 3 and 4", 5, True, 3.5),
    ("somewhere between three and four", 5, True, 3.5),
    ("3-4", 5, True, 3.5),
    ("3 or 4", 5, True, 3.5),
    ("3 to 4 out of 5", 5, True, 3.5),
    ("between 3 and 4 out of 5", 5, True, 3.5),
    ("I'd give it a 4", 5, True, 4.0),
    ("I'd rate it 2", 5, True, 2.0),
    ("probably 3", 5, True, 3.0),
    ("Five!", 5, True, 5.0),
    ("one", 5, True, 1.0),
    ("3.5", 5, True, 3.5),
    ("3,5", 5, True, 3.5),
    ("three and a half", 5, True, 3.5),
    ("4-ish", 5, True, 4.0),
    ("4 stars", 5, True, 4.0),
    ("five stars, it nailed it", 5, True, 5.0),
    ("2 stars", 5, False, 2.0),
    ("80%", 5, True, 1 + 4 * 0.8),
    ("100 percent", 5, True, 5.0),
    ("7", 10, True, 1 + 4 * 6 / 9),
    ("on a scale of 1 to 10, a 9", 5, True, 1 + 4 * 8 / 9),
    ("4, it did the job well", 5, True, 4.0),
    ("score: 2 - a bit disappointed", 5, True, 2.0),
    ("very satisfied", 5, True, 5.0),
    ("I'm pretty satisfied with it", 5, True, 4.0),
    ("not satisfied at all", 5, True, 1.0),
    ("neutral", 5, True, 3.0),
    ("so-so, middle of the road", 5, True, 3.0),
    ("a bit disappointed", 5, True, 2.0),
    ("Not very satisfied overall", 5, True, 2.0),
    ("I'm not very satisfied with it", 5, True, 2.0),
    ("wasn't happy", 5, True, None),
    ("I'm moderately satisfied with it, some good, some bad", 5, True, 3.0),
    ("I'm mostly satisfied with it, good with a few hiccups", 5, True, 4.0),
    ("I'm not very satisfied with it because only partly useful", 5, True, 2.0),
    ("I'd give it 4/5 overall", 5, False, 4.0),
    ("solid 9 out of 10", 5, False, 1 + 4 * 8 / 9),
    # Not ratings.
    ("I don't know", 5, True, None),
    ("", 5, True, None),
    ("It answered 2 of my 3 questions", 5, False, None),
    ("It asked me 3 times to rephrase", 5, False, None),
    ("available 24/7, that's nice", 5, False, None),
    ("I asked 2 questions and it got 1 right", 5, True, None),
    ("9", 5, True, None),  # off a 1-5 scale: ambiguous, not guessed
    ("it was great", 5, False, None),
    ("the explanations were long and it kept repeating itself whenever I asked", 5, True, None),
    ("It was right 80% of the time", 5, False, None),
]


@pytest.mark.parametrize(("answer", "scale", "bare", "expected"), PHRASINGS)
def test_parse_rating_table(answer, scale, bare, expected):
    got = parse_rating(answer, scale=scale, bare=bare)
    if expected is None:
        assert got is None
    else:
        assert got == pytest.approx(expected, abs=1e-6)


def test_parser_table_has_at_least_40_phrasings():
    assert len(PHRASINGS) >= 40


@pytest.mark.parametrize(("question", "scale", "asks"), [
    ("On a scale of 1 to 5, how satisfied are you with the assistant?", 5, True),
    ("How would you rate your satisfaction, from 1 (very dissatisfied) to 5 (very satisfied)?", 5, True),
    ("How satisfied were you with the interaction, on a 1-10 scale?", 10, True),
    ("Rate it on a five-point scale.", 5, True),
    ("Out of 10, how would you score the session?", 10, True),
    ("What could the assistant have done better?", None, False),
    ("Were you able to get what you needed out of the conversation?", None, False),
])
def test_question_scale_and_rating_questions(question, scale, asks):
    assert question_scale(question) == scale
    assert asks_for_rating(question) is asks


# --- The offline estimator -------------------------------------------------------------------------


# Written for this test; none is an anchor phrasing.
PRAISE = ["Honestly it was brilliant, saved me an afternoon of work.", "Super clear explanations, loved it.",
          "It nailed the bug fix on the first attempt.", "Very pleasant and accurate, ten out of ten experience.",
          "Great at summarising long documents.", "It answered everything I threw at it, really impressive."]
COMPLAINTS = ["Total waste of time, the answers were nonsense.", "It kept contradicting itself and got basic facts wrong.",
              "Frustrating, it ignored half of my instructions.", "The replies were generic and did not help at all.",
              "It refused simple requests and lectured me instead.", "Slow, clumsy and confidently wrong."]


def test_anchor_sentiment_separates_unseen_praise_from_complaints(embedder):
    estimator = AnchorSentiment(embedder)
    scores = estimator.to_scale(estimator.raw(embedder.embed(PRAISE + COMPLAINTS)))
    praise, complaints = scores[:len(PRAISE)], scores[len(PRAISE):]
    assert np.all((scores >= 1) & (scores <= 5))
    assert praise.min() > complaints.max()
    assert praise.mean() > 3.5 > 2.5 > complaints.mean()


def _sample_study(count: int, seed: int):
    samples = generate_sample(count, seed=seed)
    interviews = [to_interview(s.record, "rating-test", "sample", n) for n, s in enumerate(samples)]
    return samples, interviews, split_units(interviews)


def test_explicit_ratings_win_and_hidden_ones_never_reach_the_estimator(embedder):
    samples, interviews, units = _sample_study(12, seed=4)
    by_question = classify_questions([u.question for u in units], PrototypeClassifier(embedder))
    dimensions = {u.unit_id: by_question[u.question] for u in units}
    vectors = embedder.embed([u.answer for u in units])
    estimator = AnchorSentiment(embedder)
    ratings, sentiment = rate_interviews(units, dimensions, vectors, estimator)
    assert len(sentiment) == len(units)
    by_key = {(r.interview_id, r.dimension): r for r in ratings}
    truth = {i.interview_id: s for i, s in zip(interviews, samples)}
    explicit = [r for r in ratings if r.source == "explicit"]
    assert explicit and all(r.dimension == "satisfaction" for r in explicit)
    for rating in explicit:  # the stated number, rescaled, is within a point of the true rating
        assert abs(rating.score - truth[rating.interview_id].ratings["satisfaction"]) <= 1.0
    assert all(r.source == "estimate" for r in ratings if r.dimension != "satisfaction")
    assert {(i.interview_id, "overall") for i in interviews} <= by_key.keys()

    # Hidden: the same interviews with the number answers changed give the same estimates.
    hidden, _ = rate_interviews(units, dimensions, vectors, estimator, use_explicit=False)
    assert all(r.source == "estimate" and r.unit_id not in {e.unit_id for e in explicit} for r in hidden)
    changed = [u if u.unit_id not in {e.unit_id for e in explicit} else
               type(u)(**{**u.__dict__, "answer": "1/5"}) for u in units]
    again, _ = rate_interviews(changed, dimensions, vectors, estimator, use_explicit=False)
    assert [(r.interview_id, r.dimension, r.score) for r in again] == [(r.interview_id, r.dimension, r.score) for r in hidden]


# --- The LLM path: one call per interview ----------------------------------------------------------

FAST = LLMOptions(model="rating-model", max_concurrency=2, max_retries=0, backoff_initial=0.01, backoff_max=0.05,
                  max_tokens=400)
RATED = ("understanding", "needs", "credibility", "satisfaction", "overall")


def rating_reply(body: dict) -> dict:
    """A well-behaved model: every answer classified, every dimension scored with a real quote."""
    answers = request_data(body)["answers"]
    assert schema_name(body) == "InterviewRatingReply"
    quote = " ".join(answers[-1]["answer"].split()[:4])
    return {"questions": [{"id": a["id"], "dimension": "satisfaction" if asks_for_rating(a["question"]) else "needs"}
                          for a in answers],
            "ratings": {d: {"score": 4, "evidence": quote} for d in RATED},
            "low_effort": all(len(a["answer"]) < 12 for a in answers), "quality_reason": "short answers"}


def test_one_llm_call_per_interview_rates_every_dimension(embedder, conn):
    samples, interviews, units = _sample_study(6, seed=21)
    units[0] = type(units[0])(**{**units[0].__dict__, "answer": units[0].answer + " Mail me at jo@example.com"})
    vectors = embedder.embed([u.answer for u in units])
    with OpenAIServer(rating_reply) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        llm = LLM(client, FAST, PostgresStore(conn, None))
        result = understand_interviews(interviews, units, vectors, np.full(len(units), -1), embedder, llm=llm)
        assert server.request_count == len(interviews)  # ONE call per interview, not forty
        assert {schema_name(body) for body in server.requests} == {"InterviewRatingReply"}
        assert not any("jo@example.com" in json.dumps(body) for body in server.requests)  # scrubbed
    ledger = conn.execute("SELECT count(*), count(*) FILTER (WHERE outcome = 'ok') FROM llm_calls "
                          "WHERE purpose = 'rate' AND job_id IS NULL AND model = 'rating-model'").fetchone()
    assert ledger == (len(interviews), len(interviews))
    by_interview: dict[str, dict[str, object]] = {}
    for rating in result.ratings:
        by_interview.setdefault(rating.interview_id, {})[rating.dimension] = rating
    for interview, sample in zip(interviews, samples):
        scores = by_interview[interview.interview_id]
        assert set(scores) == set(RATED)
        assert all(scores[d].source == "llm" and scores[d].score == 4.0 for d in RATED if d != "satisfaction")
        if not sample.low_quality:  # its number answer was parsed: stated beats inferred
            assert scores["satisfaction"].source == "explicit"
        assert all(scores[d].evidence and scores[d].unit_id for d in RATED if scores[d].source == "llm")
    assert {x.dimension_source for x in result.insights} == {"llm"}
    assert result.run["rating_estimator"] == "llm:rating-model"


def test_interviews_whose_call_fails_are_rated_offline(embedder):
    samples, interviews, units = _sample_study(4, seed=22)
    vectors = embedder.embed([u.answer for u in units])
    broken = units[0].answer
    with OpenAIServer(rating_reply) as server:
        server.add_fault(Fault(status=500), times=None, when=lambda body: broken in json.dumps(body, ensure_ascii=False))
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        result = understand_interviews(interviews, units, vectors, np.full(len(units), -1), embedder,
                                       llm=LLM(client, FAST))
        assert server.request_count == len(interviews)
    failed = units[0].interview_id
    assert {r.source for r in result.ratings if r.interview_id == failed} <= {"explicit", "estimate"}
    assert {r.source for r in result.ratings if r.interview_id != failed} <= {"explicit", "llm"}
    assert result.run["rating_estimator"] == "llm:rating-model + anchor-sentiment-v2"


# --- HALIE: real people's answers against their own helpfulness ratings -----------------------------

def test_offline_estimator_on_halie_reaches_spearman_05_and_ranks_instructdavinci_first(miner_env, embedder):
    from typer.testing import CliRunner

    from miner.cli import app

    logs = needs_shared_data("halie_crossword.jsonl")
    gold = needs_shared_data("halie_crossword_ratings.csv")
    runner = CliRunner()
    ingested = runner.invoke(app, ["ingest", str(logs), "--study", "halie-eval", "--json"], env=miner_env)
    assert ingested.exit_code == 0, ingested.output
    figures = runner.invoke(app, ["eval", "ratings", "--study", "halie-eval", "--gold", str(gold), "--gold-column",
                                  "helpfulness", "--dimension", "overall", "--offline", "--json"], env=miner_env)
    assert figures.exit_code == 0, figures.output
    output = figures.stdout
    report = json.loads(output[output.index('{"dimensions"'):])
    assert set(report) == {"dimensions", "kendall_tau"}
    assert report["dimensions"]["overall"]["n"] == 304
    assert report["dimensions"]["overall"]["spearman"] >= 0.5
    assert report["kendall_tau"] >= 0.66  # at most one swapped pair of the four models

    import psycopg

    from miner.eval_ratings import evaluate_ratings, read_gold

    with psycopg.connect(miner_env["MINER_DATABASE_URL"]) as conn:
        result = evaluate_ratings(conn, "halie-eval", embedder, read_gold(gold, "helpfulness"), "needs")
    assert result.dimensions["needs"]["spearman"] >= 0.5
    assert max(result.models, key=lambda m: result.models[m]["inferred"]) == "InstructDavinci"
    assert max(result.models, key=lambda m: result.models[m]["gold"]) == "InstructDavinci"


def test_gold_csv_errors_name_the_file_and_a_byte_order_mark_is_dropped(tmp_path):
    from miner.eval_ratings import GoldDataError, read_gold

    excel = tmp_path / "gold.csv"  # Excel's "CSV UTF-8" starts with a BOM
    excel.write_bytes("\ufeffid,helpfulness\nabc,4\n".encode("utf-8"))
    assert read_gold(excel, "helpfulness") == {"abc": 4.0}
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,helpfulness\ncaf\xe9,4\n")
    with pytest.raises(GoldDataError, match="latin.csv.*not UTF-8"):
        read_gold(latin, "helpfulness")



def test_an_unknown_dimension_is_refused_not_scored_as_overall(conn, embedder):
    from miner.eval_ratings import GoldDataError, evaluate_ratings

    # `--dimension helpfulness` (the gold column's name) used to report the overall score under that name.
    with pytest.raises(GoldDataError, match="unknown dimension 'helpfulness'.*overall"):
        evaluate_ratings(conn, "any-study", embedder, {"id-1": 4.0}, "helpfulness")

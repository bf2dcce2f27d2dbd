"""After an analysis job, SQL answers the study's questions: each model's mean satisfaction with its
CI, which themes are significantly more common for a model, how many interviews were excluded and why."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from conftest import CountingEmbedder, check_answers_take_their_units_mean
from miner import db, pipeline, repository, repository_jobs
from miner.components import Components
from miner.ingest import ingest_files
from miner.sample import PLANTED_SHARES, generate_sample, write_jsonl
from miner.store import store_ingest

STUDY = "understand-sample"


def sample_with_low_quality(count: int, at_least: int = 2):
    """The first seed whose sample plants `at_least` low-quality interviews (the generator may change)."""
    for seed in range(200):
        samples = generate_sample(count, seed=seed)
        if sum(s.low_quality for s in samples) >= at_least:
            return samples
    raise AssertionError("the sample generator plants no low-quality interviews")


@pytest.fixture(scope="module")
def counting(embedder) -> CountingEmbedder:
    """The job's embedder in this module: the real one, keeping what it was asked to embed."""
    return CountingEmbedder(embedder)


@pytest.fixture(scope="module")
def analysed(database_url, settings, counting, tmp_path_factory):
    """A 50-interview sample study with planted low-quality interviews, analysed in process."""
    samples = sample_with_low_quality(50)
    path = tmp_path_factory.mktemp("understand") / "sample.jsonl"
    write_jsonl(samples, path)
    components = Components.from_settings(settings, embedder=counting)
    with db.connect(database_url) as conn:
        store_ingest(conn, STUDY, ingest_files([Path(path)], STUDY, settings.max_record_bytes))
        job_id = repository_jobs.create_job(conn, STUDY)
        conn.commit()
        counts = pipeline.run_job(conn, job_id, components)
    return samples, job_id, counts


def test_mean_satisfaction_per_model_with_ci(analysed, conn):
    samples, _, counts = analysed
    rows = conn.execute("""SELECT session_model, mean, ci_low, ci_high, n, n_explicit FROM model_ratings
                           WHERE study = %s AND dimension = 'satisfaction' ORDER BY session_model""",
                        (STUDY,)).fetchall()
    excluded = {external_id for (external_id,) in conn.execute(
        "SELECT external_id FROM interview_quality WHERE study = %s AND low_quality", (STUDY,))}
    truth: dict[str, list[int]] = {}
    for s in samples:
        if s.record["id"] not in excluded:
            truth.setdefault(s.record["sessionModel"], []).append(s.ratings["satisfaction"])
    assert [r[0] for r in rows] == sorted(truth)
    for model, mean, low, high, n, n_explicit in rows:
        assert low <= mean <= high and low < high
        assert n == n_explicit == len(truth[model])  # every one of them stated a number; excluded left out
        assert abs(mean - sum(truth[model]) / len(truth[model])) < 0.35
    assert counts["explicit_ratings"] >= 0.9 * sum(not s.low_quality for s in samples)


def test_themes_significantly_more_common_for_a_model(analysed, conn):
    """Every theme flagged as more common for a model is one the generator planted more often for it."""
    samples, _, _ = analysed
    planted = {(s.record["id"], index): label for s in samples for index, label in enumerate(s.answer_themes)}
    more_common = conn.execute(
        """SELECT theme_id, session_model, prevalence, rest_prevalence, p_adjusted, correction
           FROM theme_prevalence WHERE study = %s AND more_common""", (STUDY,)).fetchall()
    assert more_common, "no planted difference between models was found"
    for theme_id, model, prevalence, rest, p_adjusted, correction in more_common:
        assert prevalence > rest and p_adjusted < 0.05 and correction == "bh"
        answers = conn.execute(
            """SELECT a.external_id, u.answer_index FROM theme_answers a JOIN units u USING (unit_id)
               WHERE a.study = %s AND a.theme_id = %s""", (STUDY, theme_id)).fetchall()
        labels = Counter(planted[key] for key in answers if planted[key] in PLANTED_SHARES[model])
        theme = labels.most_common(1)[0][0]
        others = [shares[theme] for m, shares in PLANTED_SHARES.items() if m != model]
        assert PLANTED_SHARES[model][theme] > sum(others) / len(others), (model, theme)
    differences = conn.execute("SELECT count(*) FILTER (WHERE significant), count(*) FROM theme_differences "
                               "WHERE study = %s", (STUDY,)).fetchone()
    assert 0 < differences[0] <= differences[1]


def test_excluded_interviews_and_why(analysed, conn):
    samples, _, counts = analysed
    planted = sum(s.low_quality for s in samples)
    reasons = dict(conn.execute("SELECT reason, sum(interviews) FROM quality_exclusions WHERE study = %s "
                                "GROUP BY reason", (STUDY,)).fetchall())  # one row per model and reason
    assert planted <= reasons["any"] <= planted + 1 and counts["excluded"] == reasons["any"]
    assert {"short_chat", "empty_answers"} & reasons.keys()
    engagement = conn.execute("SELECT sum(interviews), sum(excluded) FROM model_engagement WHERE study = %s",
                              (STUDY,)).fetchone()
    assert engagement == (len(samples) - reasons["any"], reasons["any"])


def test_other_surfaces_are_filled(analysed, conn, embedder):
    _, job_id, _ = analysed
    dims = dict(conn.execute("SELECT dimension, count(*) FROM answer_dimensions WHERE study = %s GROUP BY 1",
                             (STUDY,)).fetchall())
    assert {"understanding", "needs", "credibility", "satisfaction", "improvement", "overall"} <= dims.keys()
    matrix = conn.execute("SELECT count(*) FROM dimension_correlations WHERE study = %s AND spearman IS NOT NULL",
                          (STUDY,)).fetchone()[0]
    assert matrix >= 2 * 10  # five rated dimensions: ten pairs, both orders
    sentiment = conn.execute("SELECT count(*), bool_and(positive_share + negative_share <= 1) FROM theme_sentiment "
                             "WHERE study = %s", (STUDY,)).fetchone()
    assert sentiment[0] > 0 and sentiment[1]
    step = conn.execute("SELECT status FROM job_steps WHERE job_id = %s AND step = 'understand'", (job_id,)).fetchone()
    assert step == ("done",)
    # Questions, prototypes and anchors are in the embedding cache, as answers are.
    from miner.dimensions import load_prototypes
    from miner.units import answer_hash

    question = conn.execute("SELECT question FROM units WHERE study = %s LIMIT 1", (STUDY,)).fetchone()[0]
    texts = [question, load_prototypes()["needs"][0]]
    assert len(repository.load_embeddings(conn, embedder.name, [answer_hash(t) for t in texts])) == 2


def test_an_answer_cut_into_opinion_units_takes_their_mean_vector(analysed, conn, counting, embedder):
    """Ratings and quality read an answer of two or more opinion units through the normalised mean of
    its units' vectors (miner.embed.answer_vectors); its whole text is never embedded."""
    _, job_id, _ = analysed
    interviews = [r[0] for r in conn.execute("SELECT interview_id FROM interviews WHERE study = %s", (STUDY,))]
    assert check_answers_take_their_units_mean(conn, job_id, interviews, embedder, counting.texts) >= 10


def test_eval_ratings_without_gold_hides_the_explicit_numbers(analysed, miner_env):
    from typer.testing import CliRunner

    from miner.cli import app

    result = CliRunner().invoke(app, ["eval", "ratings", "--study", STUDY, "--offline", "--json"], env=miner_env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout[result.stdout.index('{"dimensions"'):])
    assert set(report["dimensions"]) == {"satisfaction"}
    assert report["dimensions"]["satisfaction"]["n"] >= 0.9 * sum(not s.low_quality for s in analysed[0])
    assert -1.0 <= report["dimensions"]["satisfaction"]["spearman"] <= 1.0


def test_a_job_with_an_llm_makes_one_rating_call_per_interview(database_url, settings, embedder, tmp_path):
    import openai

    from miner.llm import LLMOptions
    from miner.llm_label import LabelOptions
    from openai_server import OpenAIServer, schema_name, smart_reply

    study = "understand-llm"
    samples = generate_sample(12, seed=31)
    path = tmp_path / "small.jsonl"
    write_jsonl(samples, path)

    # The job's rating call is the units step's reading of each interview (miner.llm_units), which
    # also quotes its opinions: the scripted server's reading_reply answers it.
    with OpenAIServer(smart_reply) as server, db.connect(database_url) as conn:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=10, max_retries=0)
        components = Components.from_settings(
            settings, embedder=embedder, llm_client=client, llm_options=LLMOptions(model="job-model", max_retries=0),
            label_options=LabelOptions())
        store_ingest(conn, study, ingest_files([Path(path)], study, settings.max_record_bytes))
        job_id = repository_jobs.create_job(conn, study)
        conn.commit()
        counts = pipeline.run_job(conn, job_id, components)
        rating_requests = sum(schema_name(body) == "InterviewReadingReply" for body in server.requests)
        assert rating_requests == len(samples) == counts["rate_llm_calls"]
        ledger = conn.execute("SELECT count(*) FROM llm_calls WHERE job_id = %s AND purpose = 'rate'",
                              (job_id,)).fetchone()[0]
        assert ledger == len(samples)
        sources = dict(conn.execute("SELECT source, count(*) FROM interview_ratings WHERE study = %s GROUP BY 1",
                                    (study,)).fetchall())
        assert sources.get("llm", 0) >= 4 * (len(samples) - 1) and "estimate" not in sources
        estimator = conn.execute("SELECT DISTINCT rating_estimator FROM model_ratings WHERE study = %s",
                                 (study,)).fetchall()
        assert estimator == [("llm:job-model",)]

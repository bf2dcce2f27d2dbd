"""Tests for the synthetic sample-study generator (no embeddings, fast)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from statistics import mean

import pytest

from miner.sample import (
    PLANTED_SHARES,
    PLANTED_THEMES,
    SESSION_MODELS,
    SampleInterview,
    generate_sample,
    write_jsonl,
)

REQUIRED_KEYS = {
    "id", "sessionModel", "session", "sessionStart", "sessionEnd",
    "interviewModel", "interview", "interviewStart", "interviewEnd",
}
OTHER_LABELS = {"off_topic", "low_effort", "rating"}
RATED = {"understanding", "needs", "credibility", "satisfaction", "overall"}


@pytest.fixture(scope="module")
def big_sample() -> list[SampleInterview]:
    return generate_sample(3000, seed=7)


def _user_answers(record: dict) -> list[str]:
    return [m["content"] for m in record["interview"] if m["role"] == "user"]


def _parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts)


def test_same_seed_gives_identical_sample():
    assert generate_sample(50, seed=3) == generate_sample(50, seed=3)


def test_different_seeds_give_different_samples():
    first, second = generate_sample(20, seed=1), generate_sample(20, seed=2)
    assert [s.record for s in first] != [s.record for s in second]


def test_public_constants_are_consistent():
    assert len(SESSION_MODELS) >= 3
    assert len(PLANTED_THEMES) >= 8
    assert set(PLANTED_SHARES) == set(SESSION_MODELS)
    for shares in PLANTED_SHARES.values():
        assert set(shares) == set(PLANTED_THEMES)
        assert sum(shares.values()) == pytest.approx(1.0)


def test_records_have_required_keys_and_valid_roles(big_sample):
    for sample in big_sample:
        record = sample.record
        assert REQUIRED_KEYS <= set(record)
        assert record["sessionModel"] in SESSION_MODELS
        assert isinstance(record["id"], str) and record["id"]
        for message in record["session"] + record["interview"]:
            assert message["role"] in ("user", "assistant")
            content = message["content"]
            assert isinstance(content, str) or all(isinstance(part["text"], str) for part in content)
        roles = [m["role"] for m in record["interview"]]
        assert roles == ["assistant", "user"] * 6
        assert all(isinstance(m["content"], str) for m in record["interview"])
        assert any(answer.strip() for answer in _user_answers(record))
    assert len({s.record["id"] for s in big_sample}) == len(big_sample)


def test_records_survive_a_json_round_trip(big_sample):
    for sample in big_sample[:200]:
        assert json.loads(json.dumps(sample.record)) == sample.record


def test_timestamps_are_ordered_and_realistic(big_sample):
    for sample in big_sample:
        r = sample.record
        start, end = _parse(r["sessionStart"]), _parse(r["sessionEnd"])
        interview_start, interview_end = _parse(r["interviewStart"]), _parse(r["interviewEnd"])
        assert start < end <= interview_start < interview_end
        assert (end - start).total_seconds() < 3600
        assert (interview_end - interview_start).total_seconds() < 3600


def test_sessions_are_short_chats_that_start_with_the_user(big_sample):
    lengths = Counter(len(s.record["session"]) for s in big_sample if not s.low_quality)
    assert min(lengths) >= 2 and max(lengths) <= 8
    for sample in big_sample:
        roles = [m["role"] for m in sample.record["session"]]
        assert roles == ["user", "assistant"] * (len(roles) // 2) + ["user"] * (len(roles) % 2)
    contents = [m["content"] for s in big_sample for m in s.record["session"]]
    assert any(isinstance(c, list) for c in contents) and any(isinstance(c, str) for c in contents)


def test_answer_themes_line_up_with_user_answers(big_sample):
    known = set(PLANTED_THEMES) | OTHER_LABELS
    for sample in big_sample:
        assert len(sample.answer_themes) == len(_user_answers(sample.record)) == 6
        assert set(sample.answer_themes) <= known
        if not sample.low_quality:
            # The fourth question asks for a 1-5 satisfaction score.
            assert sample.answer_themes[3] == "rating"
            assert [t for t in sample.answer_themes if t == "rating"] == ["rating"]


def test_ratings_cover_every_rated_dimension(big_sample):
    for sample in big_sample:
        assert set(sample.ratings) == RATED
        assert all(1 <= value <= 5 for value in sample.ratings.values())


def test_theme_frequencies_match_planted_shares(big_sample):
    for model in SESSION_MODELS:
        counts = Counter(
            theme
            for s in big_sample
            if s.record["sessionModel"] == model and not s.low_quality
            for theme in s.answer_themes
            if theme in PLANTED_THEMES
        )
        total = sum(counts.values())
        for theme, share in PLANTED_SHARES[model].items():
            assert counts[theme] / total == pytest.approx(share, abs=0.03), (model, theme)


def test_planted_shares_differ_between_models():
    verbose = sorted(PLANTED_SHARES[m]["too_verbose"] for m in SESSION_MODELS)
    assert verbose[-1] - verbose[0] >= 0.2


def test_off_topic_and_low_effort_are_about_five_percent(big_sample):
    labels = [t for s in big_sample if not s.low_quality for t in s.answer_themes if t != "rating"]
    counts = Counter(labels)
    assert counts["off_topic"] / len(labels) == pytest.approx(0.05, abs=0.015)
    assert counts["low_effort"] / len(labels) == pytest.approx(0.05, abs=0.015)


def test_low_effort_answers_are_short(big_sample):
    for sample in big_sample:
        for answer, theme in zip(_user_answers(sample.record), sample.answer_themes):
            if theme == "low_effort":
                assert len(answer) <= 20


def test_each_theme_is_phrased_many_ways(big_sample):
    by_theme: dict[str, set[str]] = {}
    for sample in big_sample:
        for answer, theme in zip(_user_answers(sample.record), sample.answer_themes):
            by_theme.setdefault(theme, set()).add(answer)
    for theme in PLANTED_THEMES:
        assert len(by_theme[theme]) >= 30, theme
    assert len(by_theme["rating"]) >= 30
    assert len(by_theme["off_topic"]) >= 20


def test_mean_satisfaction_differs_by_model(big_sample):
    means = {
        model: mean(s.ratings["satisfaction"] for s in big_sample if s.record["sessionModel"] == model)
        for model in SESSION_MODELS
    }
    assert max(means.values()) - min(means.values()) >= 0.5


def test_ratings_follow_the_sentiment_of_the_answers(big_sample):
    liked = [s.ratings["understanding"] for s in big_sample if s.answer_themes[0] == "understood_intent"]
    disliked = [s.ratings["understanding"] for s in big_sample if s.answer_themes[0] == "made_up_citation"]
    assert mean(liked) > mean(disliked) + 1


def test_low_quality_interviews_are_about_three_percent(big_sample):
    low = [s for s in big_sample if s.low_quality]
    assert len(low) / len(big_sample) == pytest.approx(0.03, abs=0.012)
    for sample in low:
        assert len(sample.record["session"]) == 1
        assert set(sample.answer_themes) == {"low_effort"}
        answers = _user_answers(sample.record)
        assert len(set(answers)) == 1 or all(len(a.split()) <= 2 for a in answers)


def test_extra_themes_are_planted_when_given():
    extra = {"switches_language": ["It kept switching to French mid-answer", "Random replies in Spanish"]}
    sample = generate_sample(300, seed=4, extra_themes=extra)
    answers = [
        answer
        for s in sample
        for answer, theme in zip(_user_answers(s.record), s.answer_themes)
        if theme == "switches_language"
    ]
    assert len(answers) >= 50
    assert all("French" in a or "Spanish" in a or "french" in a or "spanish" in a for a in answers)
    assert all(theme != "switches_language" for s in generate_sample(300, seed=4) for theme in s.answer_themes)


def test_extra_theme_batches_do_not_reuse_ids():
    plain = {s.record["id"] for s in generate_sample(100, seed=0)}
    extra = {s.record["id"] for s in generate_sample(100, seed=0, extra_themes={"new_one": ["something new"]})}
    assert not plain & extra


@pytest.mark.parametrize("key", ["too_verbose", "rating", "off_topic"])
def test_extra_theme_clashing_with_a_known_label_is_refused(key):
    with pytest.raises(ValueError):
        generate_sample(10, extra_themes={key: ["whatever"]})


def test_write_jsonl_writes_one_record_per_line(tmp_path):
    sample = generate_sample(25, seed=5)
    path = tmp_path / "study.jsonl"
    assert write_jsonl(sample, path) == 25
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [s.record for s in sample]


@pytest.mark.parametrize("command", [["sample", "--out", "never-written.jsonl"], ["demo", "--study", "never-run"]])
@pytest.mark.parametrize("count", ["0", "-5"])
def test_sample_and_demo_refuse_fewer_than_one_interview(command, count, tmp_path, monkeypatch):
    """`--interviews 0` wrote an empty file (`sample`) or ran a worker on an empty study (`demo`)."""
    from typer.testing import CliRunner

    from miner.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MINER_HOME", str(tmp_path / "home"))
    result = CliRunner().invoke(app, [*command, "--interviews", count])
    assert result.exit_code == 2 and "--interviews" in result.output, result.output
    assert not (tmp_path / "never-written.jsonl").exists() and not (tmp_path / "home").exists()

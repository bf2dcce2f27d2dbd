"""The analysis job in-process against real Postgres: planted themes come back, shares are right,
a re-run reuses cached embeddings and gives the same themes."""

from __future__ import annotations

import re
from collections import Counter, defaultdict

import pytest
from psycopg.rows import dict_row
from sklearn.metrics import adjusted_rand_score

from conftest import analyse_sample_twice
from miner import repository, repository_jobs
from miner.components import Components
from miner.ingest import to_interview
from miner.pipeline import NoUnitsError, run_job
from miner.sample import THEME_POLARITY, generate_sample

STUDY = "planted"


@pytest.fixture(scope="module")
def planted_study(database_url, settings, embedder):
    """A 300-interview sample study analysed twice; yields (samples, first job, second job)."""
    samples = generate_sample(300, seed=0)
    jobs = analyse_sample_twice(database_url, STUDY, samples, Components.from_settings(settings, embedder=embedder))
    return samples, jobs[0], jobs[1]


def planted_by_unit(samples) -> dict[str, str]:
    """unit_id → planted theme, built the way split_units numbers answers."""
    planted = {}
    for n, sample in enumerate(samples, start=1):
        interview_id = to_interview(sample.record, STUDY, "sample.jsonl", n).interview_id
        for answer_index, theme in enumerate(sample.answer_themes):
            planted[f"{interview_id}:{answer_index}"] = theme
    return planted


# A number, as every rating the sample plants has ("4/5", "three out of five", "7 out of 10").
RATED = re.compile(r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten)\b", re.IGNORECASE)


def answer_of(unit_id: str) -> str:
    """The answer unit an opinion unit (`<interview>:<answer index>:<k>`) is a span of."""
    return unit_id.rsplit(":", 1)[0]


def assignments(conn, job_id) -> dict[str, int]:
    rows = conn.execute("SELECT unit_id, coalesce(theme_id, -1) FROM assignments WHERE job_id = %s", (job_id,))
    return dict(rows.fetchall())


def test_planted_themes_are_recovered(conn, planted_study):
    samples, job_id, _ = planted_study
    found = assignments(conn, job_id)
    planted = planted_by_unit(samples)
    unit_ids = sorted(found)
    ari = adjusted_rand_score([planted[answer_of(u)] for u in unit_ids], [found[u] for u in unit_ids])
    assert ari >= 0.8, f"ARI against planted themes {ari:.3f}"


def test_published_stance_matches_the_planted_stance(conn, planted_study):
    """Every theme that stands for a planted theme has its planted stance; no theme is made of
    ratings or contentless answers (those are counted in no_opinion instead)."""
    samples, job_id, second = planted_study
    found = assignments(conn, second)
    planted = planted_by_unit(samples)
    members = defaultdict(list)
    for unit_id, theme_id in found.items():
        members[theme_id].append(planted[answer_of(unit_id)])
    majority = {t: Counter(p).most_common(1)[0][0] for t, p in members.items() if t >= 0}
    stance = dict(conn.execute("SELECT theme_id, stance FROM themes WHERE job_id = %s", (second,)).fetchall())
    published = dict(conn.execute("SELECT theme_id, stance FROM reporting.themes WHERE study = %s AND NOT suppressed",
                                  (STUDY,)).fetchall())
    checked = 0
    texts = dict(conn.execute("""SELECT a.unit_id, u.answer FROM assignments a JOIN units u USING (unit_id)
                                 WHERE a.job_id = %s""", (second,)).fetchall())
    for theme_id, label in majority.items():
        assert label != "low_effort", (theme_id, Counter(members[theme_id]))
        # The reason given with a rating ("minor issues only") may be themed, the rating itself never.
        rated = [RATED.search(texts[u]) is not None for u, t in found.items() if t == theme_id]
        assert sum(rated) < 0.5 * len(rated), (theme_id, label)
        if label == "off_topic":  # chatter ("is it Friday yet") holds no opinion of the assistant
            assert stance[theme_id] == "neutral", (theme_id, stance[theme_id])
        if label in THEME_POLARITY:
            want = "positive" if THEME_POLARITY[label] > 0 else "negative"
            assert stance[theme_id] == want, (theme_id, label, stance[theme_id])
            if theme_id in published:
                assert published[theme_id] == want
            checked += 1
    assert checked >= len(THEME_POLARITY)  # every planted theme came back with its stance


def test_no_opinion_answers_are_counted_not_themed(conn, planted_study):
    samples, _, second = planted_study
    no_opinion = {r[0] for r in conn.execute("SELECT unit_id FROM job_answers WHERE job_id = %s AND no_opinion",
                                             (second,))}
    assert no_opinion, "the sample has bare ratings and idk answers"
    themed_answers = {answer_of(u) for u in assignments(conn, second)}
    assert not no_opinion & themed_answers  # never a theme member
    planted = planted_by_unit(samples)
    # Most of the planted contentless answers (bare ratings without a reason, "idk") are caught.
    caught = Counter(planted[u] for u in no_opinion)
    assert caught["low_effort"] + caught["rating"] >= 0.8 * len(no_opinion), caught
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT * FROM reporting.no_opinion WHERE study = %s", (STUDY,)).fetchall()
    shown = [r for r in rows if not r["suppressed"]]
    assert shown and all(r["answers"] >= r["interviews"] > 0 and 1 <= len(r["examples"]) <= 3 for r in shown)
    k = conn.execute("SELECT min_interviews_per_cell FROM reporting_settings").fetchone()[0]
    assert all(r["interviews"] is None and r["examples"] is None for r in rows if r["suppressed"])
    assert all(r["interviews"] >= k for r in shown)
    total = conn.execute("""SELECT count(*) FROM job_answers a JOIN units u USING (unit_id)
                            WHERE a.job_id = %s AND a.no_opinion""", (second,)).fetchone()[0]
    assert sum(r["answers"] for r in shown) <= total == len(no_opinion)


def test_theme_by_model_shares_match_planted_prevalence(conn, planted_study):
    samples, job_id, _ = planted_study
    found = assignments(conn, job_id)
    planted = planted_by_unit(samples)
    model_of = {u: s.record["sessionModel"] for s in samples for u in planted if False}  # filled below
    for n, sample in enumerate(samples, start=1):
        interview_id = to_interview(sample.record, STUDY, "sample.jsonl", n).interview_id
        for answer_index in range(len(sample.answer_themes)):
            model_of[f"{interview_id}:{answer_index}"] = sample.record["sessionModel"]
    # Each found theme stands for the planted theme most of its answers carry.
    members = defaultdict(list)
    for unit_id, theme_id in found.items():
        members[theme_id].append(planted[answer_of(unit_id)])
    majority = {theme_id: Counter(themes).most_common(1)[0][0] for theme_id, themes in members.items() if theme_id >= 0}
    answers_per_model = Counter(model_of[answer_of(u)] for u in found)
    # The cells as stored for the published job (the theme_by_model view suppresses cells under K).
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("""SELECT s.theme_id, s.session_model, s.answers, s.share FROM theme_model_stats s
                              JOIN latest_jobs l USING (job_id) WHERE l.study = %s""", (STUDY,)).fetchall()
    assert rows, "theme_model_stats is empty"
    for row in rows:
        true_count = sum(1 for u in found if model_of[answer_of(u)] == row["session_model"]
                         and planted[answer_of(u)] == majority[row["theme_id"]])
        true_share = true_count / answers_per_model[row["session_model"]]
        theme_total = sum(1 for t, p in majority.items() if p == majority[row["theme_id"]])
        if theme_total == 1:  # a planted theme split over several found themes shares its mass
            assert row["share"] == pytest.approx(true_share, abs=0.03), row
        assert row["share"] == pytest.approx(row["answers"] / answers_per_model[row["session_model"]])


def test_theme_by_model_view_columns_and_latest_job(conn, planted_study):
    _, first, second = planted_study
    cursor = conn.execute("SELECT * FROM theme_by_model WHERE study = %s LIMIT 1", (STUDY,))
    columns = [c.name for c in cursor.description]
    assert columns[:7] == ["study", "theme_id", "label", "session_model", "answers", "interviews", "share"]
    job_ids = {str(r[0]) for r in conn.execute("SELECT DISTINCT job_id FROM theme_by_model WHERE study = %s", (STUDY,))}
    assert job_ids == {second}  # the latest succeeded job only
    shares = conn.execute(
        "SELECT session_model, sum(share) FROM theme_by_model WHERE study = %s GROUP BY 1", (STUDY,)).fetchall()
    assert all(0.9 <= total <= 1.0 + 1e-9 for _, total in shares)  # a model's shares sum to its non-outlier part


def test_rerun_reuses_embeddings_and_gives_same_themes(conn, planted_study):
    _, first, second = planted_study
    counts = {job: repository_jobs.get_job(conn, job).counts for job in (first, second)}
    assert counts[first]["embedded"] > 0
    assert counts[second]["embedded"] == 0
    assert assignments(conn, first) == assignments(conn, second)
    labels = lambda job: conn.execute("SELECT theme_id, label FROM themes WHERE job_id = %s ORDER BY 1", (job,)).fetchall()
    assert labels(first) == labels(second)


def test_theme_summary_has_three_distinct_quotes(conn, planted_study):
    rows = repository.theme_summary(conn, STUDY)
    assert len(rows) >= 5, "the planted study came back with (almost) no themes"
    for row in rows:
        assert row["labeller"] == "extractive"
        assert row["keywords"] and row["label"]
        quotes = [q for q in row["quotes"] if q is not None]
        assert 0 < len(quotes) <= min(3, row["answers"])
        assert len({q.casefold() for q in quotes}) == len(quotes)
        if row["answers"] >= 10:  # enough different answers to pick three from
            assert len(quotes) == 3


def test_job_without_answers_fails_with_clear_error(conn, settings, embedder):
    job_id = repository_jobs.create_job(conn, "no-such-study")
    conn.commit()
    components = Components.from_settings(settings, embedder=embedder)
    with pytest.raises(NoUnitsError):
        run_job(conn, job_id, components)
    job = repository_jobs.get_job(conn, job_id)
    assert job.status == "failed" and "no answers to analyse" in job.error

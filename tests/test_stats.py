"""Per-model statistics against hand-computed values on small fixtures."""

from __future__ import annotations

import math

import numpy as np
import pytest

from miner.records import Interview, Rating, Unit, interview_from_record
from miner.stats import (StatsOptions, adjust_pvalues, bootstrap_mean_ci, cohens_h, dimension_correlations,
                         engagement, rating_stats, theme_prevalence, theme_sentiment, wilson_interval)


def unit(interview: str, model: str, index: int = 0, answer: str = "fine answer") -> Unit:
    return Unit(f"{interview}:{index}", interview, "s", model, index, "Q?", answer, f"h-{interview}-{index}")


def test_bootstrap_interval_contains_the_mean_and_is_deterministic():
    mean, low, high = bootstrap_mean_ci([1, 2, 3, 4, 5], seed=1)
    assert mean == 3.0
    assert low < 3.0 < high
    assert 1.5 < low and high < 4.5  # the mean of five values between 1 and 5 is never that extreme
    assert bootstrap_mean_ci([1, 2, 3, 4, 5], seed=1) == (mean, low, high)
    assert bootstrap_mean_ci([4, 4, 4]) == (4.0, 4.0, 4.0)


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    true_mean = 3.2
    covered = 0
    for trial in range(200):
        sample = np.clip(np.round(rng.normal(true_mean, 1.0, 40)), 1, 5)
        # The clipped, rounded distribution's own mean is the target.
        _, low, high = bootstrap_mean_ci(sample, resamples=1000, seed=trial)
        covered += low <= 3.2 + _clip_shift() <= high
    assert 0.88 <= covered / 200 <= 0.99


def _clip_shift() -> float:
    """Mean of clip(round(N(3.2, 1)), 1, 5) minus 3.2, computed exactly."""
    from scipy.stats import norm

    values = np.arange(1, 6)
    edges = np.array([-np.inf, 1.5, 2.5, 3.5, 4.5, np.inf])
    probabilities = np.diff(norm.cdf(edges, loc=3.2, scale=1.0))
    return float(values @ probabilities) - 3.2


def test_wilson_interval_matches_hand_computation():
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and 0.0 < high < 0.2


def test_benjamini_hochberg_and_holm_match_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_pvalues([], "bh") == []
    with pytest.raises(ValueError):
        adjust_pvalues(p, "bonferroni-ish")


def _prevalence_fixture(planted: float, others: float, null_share: float, per_model: int = 60,
                        null_themes: int = 10) -> tuple[list[Unit], np.ndarray]:
    """Three models × `per_model` interviews. Theme 0: `planted` of model A's interviews, `others`
    of B's and C's. Themes 1..null_themes: `null_share` of every model's interviews."""
    units, labels = [], []
    for model in ("A", "B", "C"):
        share0 = planted if model == "A" else others
        for n in range(per_model):
            interview = f"{model}{n}"
            units.append(unit(interview, model, 0))
            labels.append(0 if n < round(share0 * per_model) else -1)
            for theme in range(1, null_themes + 1):
                units.append(unit(interview, model, theme))
                # Rotate which interviews carry each null theme; the count is exactly equal per model.
                labels.append(theme if (n + theme) % per_model < round(null_share * per_model) else -1)
    return units, np.array(labels)


@pytest.mark.parametrize("correction", ["bh", "holm"])
def test_planted_prevalence_difference_is_significant_and_null_ones_are_not(correction):
    units, labels = _prevalence_fixture(planted=0.6, others=0.2, null_share=0.3)
    rows, tests = theme_prevalence(units, labels, excluded=set(), options=StatsOptions(correction=correction))
    cell = {(r.theme_id, r.session_model): r for r in rows}
    a0 = cell[(0, "A")]
    assert (a0.interviews_with, a0.interviews) == (36, 60)
    assert a0.prevalence == pytest.approx(0.6)
    assert a0.rest_prevalence == pytest.approx(24 / 120)
    assert a0.difference == pytest.approx(0.4)
    assert a0.cohens_h == pytest.approx(2 * math.asin(math.sqrt(0.6)) - 2 * math.asin(math.sqrt(0.2)))
    assert a0.ci_low < 0.6 < a0.ci_high
    assert a0.significant and a0.p_adjusted < 0.05 and a0.p_adjusted >= a0.p_value
    # B's share (0.2) against A ∪ C (0.4) has raw p ≈ 0.0075, but not after correcting for 33 tests.
    assert cell[(0, "B")].difference < 0 and cell[(0, "B")].p_value < 0.05 and not cell[(0, "B")].significant
    nulls = [r for r in rows if r.theme_id != 0]
    assert len(nulls) == 30 and not any(r.significant for r in nulls)
    assert all(r.difference == pytest.approx(0.0) for r in nulls)
    by_theme = {t.theme_id: t for t in tests}
    assert by_theme[0].significant and by_theme[0].cramers_v > 0.3
    assert not any(by_theme[t].significant for t in range(1, 11))


def test_prevalence_leaves_excluded_interviews_out():
    units, labels = _prevalence_fixture(planted=0.6, others=0.2, null_share=0.3, null_themes=1)
    excluded = {f"A{n}" for n in range(30)}  # half of A's interviews, all of them with theme 0
    rows, _ = theme_prevalence(units, labels, excluded)
    a0 = next(r for r in rows if (r.theme_id, r.session_model) == (0, "A"))
    assert (a0.interviews_with, a0.interviews) == (6, 30)


def test_rating_stats_means_n_and_exclusion():
    ratings = [Rating(f"i{n}", "A", "satisfaction", score, "explicit") for n, score in enumerate([4, 5, 3, 1])]
    ratings += [Rating("j0", "B", "satisfaction", 2.5, "estimate"), Rating("j1", "B", "satisfaction", 3.5, "estimate")]
    rows = {(r.session_model, r.dimension): r for r in rating_stats(ratings, excluded={"i3"})}
    a = rows[("A", "satisfaction")]
    assert (a.n, a.mean, a.n_explicit) == (3, 4.0, 3)
    assert a.ci_low <= 4.0 <= a.ci_high and 3.0 <= a.ci_low and a.ci_high <= 5.0
    b = rows[("B", "satisfaction")]
    assert (b.n, b.mean, b.n_explicit) == (2, 3.0, 0)


def test_spearman_matrix_between_dimensions():
    ratings = []
    for n, (u, s, c) in enumerate([(1, 2, 5), (2, 3, 4), (3, 5, 3), (4, 4.5, 2)]):
        ratings += [Rating(f"i{n}", "A", "understanding", u, "estimate"),
                    Rating(f"i{n}", "A", "satisfaction", s, "explicit"),
                    Rating(f"i{n}", "A", "credibility", c, "estimate")]
    ratings.append(Rating("i9", "A", "understanding", 5, "estimate"))  # no partner: not paired
    rows = {(r.dimension_a, r.dimension_b): r for r in dimension_correlations(ratings, excluded=set())}
    assert rows[("credibility", "understanding")].spearman == pytest.approx(-1.0)
    assert rows[("credibility", "understanding")].n == 4
    assert rows[("satisfaction", "understanding")].spearman == pytest.approx(0.8)  # ranks 1,2,4,3 vs 1,2,3,4
    few = dimension_correlations(ratings[:6], excluded=set())
    assert all(r.spearman is None and r.n == 2 for r in few)


def test_theme_sentiment_flags_a_split_opinion_as_bipolar():
    units = [unit(f"i{n}", "A", 0) for n in range(10)] + [unit(f"j{n}", "B", 0) for n in range(10)]
    labels = np.zeros(20, dtype=int)
    sentiment = np.array([4.5] * 4 + [1.5] * 4 + [3.0] * 2 + [4.2] * 9 + [1.0])
    rows = {r.session_model: r for r in theme_sentiment(units, labels, sentiment, excluded=set())}
    assert rows["A"].bipolar and rows["A"].positive_share == 0.4 and rows["A"].negative_share == 0.4
    assert not rows["B"].bipolar and rows["B"].positive_share == 0.9
    assert rows["A"].mean_sentiment == pytest.approx((4 * 4.5 + 4 * 1.5 + 6.0) / 10)
    # Too few answers to call a split.
    small = theme_sentiment(units[:4], labels[:4], np.array([5.0, 5.0, 1.0, 1.0]), excluded=set())
    assert not small[0].bipolar


def _interview(interview_id: str, model: str, session: list[dict], start: str | None, end: str | None) -> Interview:
    record = {"sessionModel": model, "session": session, "sessionStart": start, "sessionEnd": end,
              "interviewModel": "iv", "interview": [{"role": "assistant", "content": "Q?"},
                                                    {"role": "user", "content": "four words of answer"}],
              "interviewStart": "2025-01-01T10:10:00Z", "interviewEnd": "2025-01-01T10:12:00Z"}
    return interview_from_record(record, interview_id=interview_id, study="s", source_file="f", source_position=1,
                                 external_id=None)


def test_engagement_per_model_against_hand_counts():
    chat = [{"role": "user", "content": "one two three"}, {"role": "assistant", "content": "a b c d e"},
            {"role": "user", "content": "x"}, {"role": "assistant", "content": "y z"}]
    interviews = [_interview("i1", "A", chat, "2025-01-01T10:00:00Z", "2025-01-01T10:05:00Z"),
                  _interview("i2", "A", chat[:2], "2025-01-01T10:00:00Z", "2025-01-01T10:01:00Z"),
                  _interview("i3", "A", [], None, None),
                  _interview("i4", "B", [], None, None)]
    units = [unit(i.interview_id, i.session_model, answer="four words of answer") for i in interviews]
    rows = {r.session_model: r for r in engagement(interviews, units, excluded={"i3"})}
    a = rows["A"]
    assert (a.interviews, a.excluded) == (2, 1)
    assert a.chat_rounds == 1.5  # 2 and 1 user turns
    assert a.user_words_per_turn == pytest.approx((3 + 1 + 3) / 3)
    assert a.model_words_per_turn == pytest.approx((5 + 2 + 5) / 3)
    assert a.session_seconds == 180.0 and a.session_seconds_median == 180.0
    assert a.interview_seconds == 120.0 and a.answer_words == 4.0
    b = rows["B"]
    assert b.session_seconds is None and b.user_words_per_turn is None and b.chat_rounds == 0.0


def test_cohens_h_is_zero_for_equal_shares_and_signed():
    assert cohens_h(0.3, 0.3) == 0.0
    assert cohens_h(0.6, 0.2) > 0 > cohens_h(0.2, 0.6)


def test_stored_statistics_equal_those_of_the_units_they_aggregate():
    """A stored job's statistics take ratings and themed sentiment aggregated per cell and count
    interviews (miner.stats.stored_statistics, what the understand step does at any size): the same
    numbers, to the last bit, as statistics_from over the units, low-quality interviews left out of both."""
    from collections import defaultdict

    from miner.stats import InterviewEngagement, RatingCell, UnitOf, statistics_from, stored_statistics

    rng = np.random.default_rng(5)
    models = ["m-b", "m-a", "m-c"]
    interviews = [f"i-{rng.integers(10**6):06d}-{k}" for k in range(120)]  # ids not in creation order
    model_of = {i: models[k % 3] for k, i in enumerate(interviews)}
    answered = [UnitOf(f"{i}:{q}", i, model_of[i]) for i in interviews for q in range(4)]
    themed = [UnitOf(f"{u.unit_id}#{s}", u.interview_id, u.session_model) for u in answered for s in range(2)
              if rng.random() < 0.6]
    labels = rng.integers(-1, 6, len(themed))
    sentiment = np.round(rng.uniform(1, 5, len(themed)), 4)
    ratings = [Rating(i, model_of[i], d, float(rng.integers(1, 6)), "explicit" if rng.random() < 0.3 else "estimate")
               for i in sorted(interviews) for d in ("credibility", "needs", "overall") if rng.random() < 0.9]
    engagement_rows = [InterviewEngagement(i, model_of[i], 2, 10, 2, 30, 2, 60.0, 120.0, 40, 4) for i in interviews]
    excluded = set(interviews[::7])
    options = StatsOptions(resamples=300)

    expected = statistics_from(engagement_rows, answered, ratings, (themed, labels, sentiment), excluded, options)
    totals: dict[str, set[str]] = defaultdict(set)
    with_theme: dict[tuple[int, str], set[str]] = defaultdict(set)
    for u, label in [(u, -1) for u in answered] + list(zip(themed, labels)):
        if u.interview_id not in excluded:
            totals[u.session_model].add(u.interview_id)
            if label >= 0:
                with_theme[(int(label), u.session_model)].add(u.interview_id)
    # As the repository aggregates them: per model × dimension in interview order, keyed by rank.
    included = [r for r in ratings if r.interview_id not in excluded]
    key = {i: k for k, i in enumerate(sorted({r.interview_id for r in included}))}
    cells = []
    for model, dimension in sorted({(r.session_model, r.dimension) for r in included}, reverse=True):
        cell = sorted((r for r in included if (r.session_model, r.dimension) == (model, dimension)),
                      key=lambda r: r.interview_id)
        cells.append(RatingCell(model, dimension, np.array([key[r.interview_id] for r in cell], dtype=np.int64),
                                np.array([r.score for r in cell]), sum(r.source == "explicit" for r in cell)))
    grouped: dict[tuple[int, str], list[float]] = defaultdict(list)
    for u, t, s in zip(themed, labels, sentiment):
        if t >= 0 and u.interview_id not in excluded:
            grouped[(int(t), u.session_model)].append(float(s))
    stored = stored_statistics(
        engagement_rows, excluded, iter(cells),
        ({m: len(i) for m, i in totals.items()}, {k: len(i) for k, i in with_theme.items()}),
        {k: np.array(v) for k, v in grouped.items()}, options)
    assert stored == expected
    assert expected.prevalence and expected.ratings and expected.sentiment and expected.correlations

"""Statistics stage: per-model numbers with their uncertainty, from interviews that passed the
quality filter.

- engagement: interviews, chat rounds, words per turn, session and interview durations;
- ratings: mean per model × dimension with a 95% percentile-bootstrap confidence interval;
- theme prevalence: share of a model's interviews touching each theme (Wilson interval), a
  one-vs-rest Fisher exact test per theme × model and a chi-square test per theme across all
  models, p-values adjusted over all themes (Benjamini–Hochberg by default, or Holm);
- Spearman correlations between dimensions over interviews;
- sentiment per theme × model: shares of clearly positive and negative answers, flagged bipolar
  when both are sizeable.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from itertools import combinations
from typing import Literal

import numpy as np

from miner.records import (DimensionCorrelation, Interview, ModelEngagement, ModelRating, Rating,
                           ThemePrevalence, ThemeSentiment, ThemeTest, Unit)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StatsOptions:
    resamples: int = 2000
    level: float = 0.95
    alpha: float = 0.05  # significance level, applied to adjusted p-values
    correction: Literal["bh", "holm"] = "bh"
    seed: int = 0
    positive: float = 4.0  # an answer at or above this sentiment (1-5) is clearly positive
    negative: float = 2.0  # at or below, clearly negative
    bipolar_share: float = 0.25  # both shares at least this much: a split opinion
    min_bipolar_answers: int = 10


@dataclass(frozen=True)
class Statistics:
    """Everything the statistics stage writes back."""

    engagement: list[ModelEngagement]
    ratings: list[ModelRating]
    prevalence: list[ThemePrevalence]
    theme_tests: list[ThemeTest]
    correlations: list[DimensionCorrelation]
    sentiment: list[ThemeSentiment]


def bootstrap_mean_ci(values: Sequence[float], resamples: int = 2000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the percentile bootstrap interval of the mean."""
    data = np.asarray(values, dtype=float)
    mean = float(data.mean())
    if len(data) < 2 or np.all(data == data[0]):
        return mean, mean, mean
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, 2_000_000 // len(data))  # bound memory: resample in chunks
    for start in range(0, resamples, step):
        count = min(step, resamples - start)
        means[start:start + count] = data[rng.integers(0, len(data), (count, len(data)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


@lru_cache(maxsize=8)
def _normal_quantile(level: float) -> float:
    """z of a two-sided interval at `level`, once per level (scipy's ppf costs ~0.1 ms a call, and
    every theme × model cell asks)."""
    from scipy.stats import norm

    return float(norm.ppf(1 - (1 - level) / 2))


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion; (0, 1) when there are no trials."""
    if trials == 0:
        return 0.0, 1.0
    z = _normal_quantile(level)
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def adjust_pvalues(p_values: Sequence[float], method: str = "bh") -> list[float]:
    """Benjamini–Hochberg (false discovery rate) or Holm (family-wise error) adjusted p-values."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "bh":
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    elif method == "holm":
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        raise ValueError(f"unknown correction {method!r}; use 'bh' or 'holm'")
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out.tolist()


def cohens_h(p1: float, p2: float) -> float:
    """Effect size of a difference between two proportions (0.2 small, 0.5 medium, 0.8 large)."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    try:
        delta = end - start
    except TypeError:  # one with a time zone, one without
        return None
    seconds = delta.total_seconds()
    return seconds if seconds >= 0 else None


def _words(text: str) -> int:
    return len(text.split())


@dataclass(frozen=True, slots=True)
class UnitOf:
    """Where a unit comes from, all the theme statistics read of it."""

    unit_id: str
    interview_id: str
    session_model: str


@dataclass(frozen=True)
class RatingCell:
    """One model × dimension's included ratings as a stored job aggregates them: scores in interview
    order and each one's interview key (an integer, one per interview across the job's ratings)."""

    session_model: str
    dimension: str
    keys: np.ndarray    # int64
    scores: np.ndarray  # float64, in the order `keys` are
    explicit: int       # how many of the scores the user gave outright


@dataclass(frozen=True)
class InterviewEngagement:
    """One interview's engagement sums: what the per-model engagement statistics are made of
    (stored per interview, so a nightly job recomputes the statistics without re-reading answers)."""

    interview_id: str
    session_model: str
    chat_rounds: int
    user_words: int
    user_turns: int
    model_words: int
    model_turns: int
    session_seconds: float | None
    interview_seconds: float | None
    answer_words: int
    answers: int


def interview_engagement(interviews: Sequence[Interview], units: Sequence[Unit]) -> list[InterviewEngagement]:
    """Per interview: chat rounds, words and turns per role, durations, answer words over `units`."""
    answer_words: dict[str, list[int]] = defaultdict(list)
    for unit in units:
        answer_words[unit.interview_id].append(_words(unit.answer))
    rows = []
    for interview in interviews:
        words = {"user": [0, 0], "assistant": [0, 0]}
        for message in interview.session:
            if message.role in words:
                words[message.role][0] += _words(message.text)
                words[message.role][1] += 1
        answered = answer_words.get(interview.interview_id, [])
        rows.append(InterviewEngagement(
            interview.interview_id, interview.session_model, sum(m.role == "user" for m in interview.session),
            words["user"][0], words["user"][1], words["assistant"][0], words["assistant"][1],
            _seconds(interview.session_start, interview.session_end),
            _seconds(interview.interview_start, interview.interview_end), sum(answered), len(answered)))
    return rows


def engagement(interviews: Sequence[Interview], units: Sequence[Unit], excluded: set[str]) -> list[ModelEngagement]:
    """Per model: how long and how much its users chatted and answered (included interviews only)."""
    return engagement_from(interview_engagement(interviews, units), excluded)


def engagement_from(rows: Sequence[InterviewEngagement], excluded: set[str]) -> list[ModelEngagement]:
    """Per model engagement from per-interview sums (miner.stats.interview_engagement)."""
    by_model: dict[str, list[InterviewEngagement]] = defaultdict(list)
    excluded_count: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.interview_id in excluded:
            excluded_count[row.session_model] += 1
        else:
            by_model[row.session_model].append(row)

    def mean(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    def median(values: list[float]) -> float | None:
        return float(np.median(values)) if values else None

    def ratio(words: int, turns: int) -> float | None:
        return words / turns if turns else None

    result = []
    for model in sorted(set(by_model) | set(excluded_count)):
        group = by_model.get(model, [])
        session = [r.session_seconds for r in group if r.session_seconds is not None]
        interview = [r.interview_seconds for r in group if r.interview_seconds is not None]
        answers = sum(r.answers for r in group)
        result.append(ModelEngagement(
            session_model=model, interviews=len(group), excluded=excluded_count.get(model, 0),
            chat_rounds=float(np.mean([r.chat_rounds for r in group])) if group else 0.0,
            user_words_per_turn=ratio(sum(r.user_words for r in group), sum(r.user_turns for r in group)),
            model_words_per_turn=ratio(sum(r.model_words for r in group), sum(r.model_turns for r in group)),
            answer_words=sum(r.answer_words for r in group) / answers if answers else 0.0,
            session_seconds=mean(session), session_seconds_median=median(session),
            interview_seconds=mean(interview), interview_seconds_median=median(interview)))
    return result


def rating_stats(ratings: Sequence[Rating], excluded: set[str], options: StatsOptions = StatsOptions()) -> list[ModelRating]:
    """Mean rating per model × dimension with its bootstrap confidence interval."""
    groups: dict[tuple[str, str], list[Rating]] = defaultdict(list)
    for rating in ratings:
        if rating.interview_id not in excluded:
            groups[(rating.session_model, rating.dimension)].append(rating)
    return rating_stats_from({key: ([r.score for r in group], sum(r.source == "explicit" for r in group))
                              for key, group in groups.items()}, options)


def rating_stats_from(groups: dict[tuple[str, str], tuple[Sequence[float], int]],
                      options: StatsOptions = StatsOptions()) -> list[ModelRating]:
    """`rating_stats` from (model, dimension) → (its included scores in rating order, how many explicit)."""
    rows = []
    for (model, dimension), (scores, explicit) in sorted(groups.items()):
        mean, low, high = bootstrap_mean_ci(scores, options.resamples, options.level, options.seed)
        rows.append(ModelRating(model, dimension, len(scores), mean, low, high, int(explicit)))
    return rows


def theme_prevalence(units: Sequence[Unit], labels: np.ndarray, excluded: set[str],
                     options: StatsOptions = StatsOptions()) -> tuple[list[ThemePrevalence], list[ThemeTest]]:
    """Per theme × model: share of the model's interviews touching the theme, its interval and a
    one-vs-rest test; per theme: a chi-square test across models. Adjusted over all themes."""
    interviews_of: dict[str, set[str]] = defaultdict(set)
    with_theme: dict[tuple[int, str], set[str]] = defaultdict(set)
    for unit, label in zip(units, labels):
        if unit.interview_id in excluded:
            continue
        interviews_of[unit.session_model].add(unit.interview_id)
        if label >= 0:
            with_theme[(int(label), unit.session_model)].add(unit.interview_id)
    return prevalence_from({m: len(i) for m, i in interviews_of.items()},
                           {key: len(i) for key, i in with_theme.items()}, options)


def prevalence_from(totals: dict[str, int], with_theme: dict[tuple[int, str], int],
                    options: StatsOptions = StatsOptions()) -> tuple[list[ThemePrevalence], list[ThemeTest]]:
    """`theme_prevalence` from counts of included interviews: per model (`totals`) and per theme ×
    model with the theme (`with_theme`, only the non-zero ones); what a stored job's are counted as in SQL."""
    from scipy.stats import chi2_contingency, fisher_exact

    models = sorted(totals)
    themes = sorted({theme for theme, _ in with_theme})
    cells, p_values = [], []
    tests = []
    for theme in themes:
        counts = {m: with_theme.get((theme, m), 0) for m in models}
        for model in models:
            k, n = counts[model], totals[model]
            rest_k = sum(counts[m] for m in models if m != model)
            rest_n = sum(totals[m] for m in models if m != model)
            test = None
            if rest_n:
                test = fisher_exact([[k, n - k], [rest_k, rest_n - rest_k]])[1]
                p_values.append(test)
            cells.append((theme, model, k, n, rest_k, rest_n, test))
        if len(models) > 1:
            table = np.array([[counts[m], totals[m] - counts[m]] for m in models])
            if table[:, 0].sum() and table[:, 1].sum():
                statistic, p, dof, _ = chi2_contingency(table)
                cramers_v = math.sqrt(statistic / (table.sum() * (min(table.shape) - 1)))
            else:  # every interview (or none) has the theme: nothing to compare
                statistic, p, dof, cramers_v = 0.0, 1.0, len(models) - 1, 0.0
            tests.append([theme, float(statistic), int(dof), float(p), float(cramers_v)])
    adjusted = iter(adjust_pvalues(p_values, options.correction))
    rows = []
    for theme, model, k, n, rest_k, rest_n, p in cells:
        low, high = wilson_interval(k, n, options.level)
        prevalence = k / n if n else 0.0
        if p is None:
            rows.append(ThemePrevalence(theme, model, k, n, prevalence, low, high, None, None, None, None, None, False))
            continue
        rest = rest_k / rest_n
        p_adjusted = next(adjusted)
        rows.append(ThemePrevalence(theme, model, k, n, prevalence, low, high, rest, prevalence - rest,
                                    cohens_h(prevalence, rest), float(p), float(p_adjusted),
                                    p_adjusted < options.alpha))
    theme_adjusted = adjust_pvalues([t[3] for t in tests], options.correction)
    theme_tests = [ThemeTest(theme, statistic, dof, p, p_adj, v, p_adj < options.alpha)
                   for (theme, statistic, dof, p, v), p_adj in zip(tests, theme_adjusted)]
    return rows, theme_tests


def dimension_correlations(ratings: Sequence[Rating], excluded: set[str]) -> list[DimensionCorrelation]:
    """Spearman correlation of each pair of dimensions over interviews rated on both."""
    scores: dict[str, dict[str, float]] = defaultdict(dict)
    for rating in ratings:
        if rating.interview_id not in excluded:
            scores[rating.dimension][rating.interview_id] = rating.score
    code = {i: k for k, i in enumerate(sorted({i for by in scores.values() for i in by}))}
    return correlations_from({d: (np.array([code[i] for i in by], dtype=np.int64), np.array(list(by.values())))
                              for d, by in scores.items()})


def correlations_from(columns: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[DimensionCorrelation]:
    """`dimension_correlations` from per dimension (interview keys, scores): one score per interview
    under an integer key. The pairs are taken in key order; any order gives the same rho and p to the
    last bit (Spearman's rho is a correlation of ranks, halves of integers, whose sums are exact)."""
    from scipy.stats import spearmanr

    rows = []
    for a, b in combinations(sorted(columns), 2):
        (keys_a, scores_a), (keys_b, scores_b) = columns[a], columns[b]
        _, in_a, in_b = np.intersect1d(keys_a, keys_b, assume_unique=True, return_indices=True)
        x, y = np.asarray(scores_a, dtype=float)[in_a], np.asarray(scores_b, dtype=float)[in_b]
        rho = p = None
        if len(x) >= 3 and len(np.unique(x)) > 1 and len(np.unique(y)) > 1:
            result = spearmanr(x, y)
            rho, p = float(result.statistic), float(result.pvalue)
        rows.append(DimensionCorrelation(a, b, rho, p, len(x)))
    return rows


def theme_sentiment(units: Sequence[Unit], labels: np.ndarray, sentiment: np.ndarray, excluded: set[str],
                    options: StatsOptions = StatsOptions()) -> list[ThemeSentiment]:
    """Per theme × model: shares of clearly positive and negative answers; bipolar when both are sizeable."""
    groups: dict[tuple[int, str], list[float]] = defaultdict(list)
    for unit, label, value in zip(units, labels, sentiment):
        if label >= 0 and unit.interview_id not in excluded:
            groups[(int(label), unit.session_model)].append(float(value))
    return sentiment_from(groups, options)


def sentiment_from(groups: dict[tuple[int, str], Sequence[float]],
                   options: StatsOptions = StatsOptions()) -> list[ThemeSentiment]:
    """`theme_sentiment` from (theme, model) → its included units' sentiment, in unit order."""
    rows = []
    for (theme, model), values in sorted(groups.items()):
        data = np.asarray(values, dtype=float)
        positive = float((data >= options.positive).mean())
        negative = float((data <= options.negative).mean())
        bipolar = (len(data) >= options.min_bipolar_answers and positive >= options.bipolar_share
                   and negative >= options.bipolar_share)
        rows.append(ThemeSentiment(theme, model, len(data), positive, negative, float(data.mean()), bipolar))
    return rows


def compute_statistics(interviews: Sequence[Interview], units: Sequence[Unit], labels: np.ndarray,
                       ratings: Sequence[Rating], sentiment: np.ndarray, excluded: set[str],
                       options: StatsOptions = StatsOptions(),
                       themed: tuple[Sequence[Unit], np.ndarray, np.ndarray] | None = None) -> Statistics:
    """All per-model statistics, leaving out the `excluded` (low-quality) interviews.

    `themed` (units, theme ids, sentiment) replaces `units`' own theme ids and sentiment for the
    theme statistics when the themes were built from other units (opinion units of the answers);
    every interview of `units` still counts in the denominators."""
    return statistics_from(interview_engagement(interviews, units), units, ratings,
                           (units, labels, sentiment) if themed is None else themed, excluded, options,
                           interviews=len(interviews))


def statistics_from(engagement_rows: Sequence[InterviewEngagement], answered: Sequence[Unit | UnitOf],
                    ratings: Sequence[Rating], themed: tuple[Sequence[Unit | UnitOf], np.ndarray, np.ndarray],
                    excluded: set[str], options: StatsOptions = StatsOptions(),
                    interviews: int | None = None) -> Statistics:
    """The statistics from per-interview and per-unit values alone (what a job stores): engagement
    sums, the answers' (interview, model) for the denominators, ratings, and the themed units with
    their theme ids and sentiment. Nothing here reads an answer's text."""
    theme_units, theme_labels, theme_values = themed
    prevalence = theme_prevalence(list(answered) + list(theme_units),
                                  np.concatenate([np.full(len(answered), -1, dtype=np.int64),
                                                  np.asarray(theme_labels, dtype=np.int64)]), excluded, options)
    return _assembled(engagement_from(engagement_rows, excluded), rating_stats(ratings, excluded, options), prevalence,
                      dimension_correlations(ratings, excluded),
                      theme_sentiment(theme_units, theme_labels, theme_values, excluded, options),
                      len(engagement_rows) if interviews is None else interviews, len(excluded), options)


def _assembled(engagement: list[ModelEngagement], ratings: list[ModelRating],
               prevalence: tuple[list[ThemePrevalence], list[ThemeTest]], correlations: list[DimensionCorrelation],
               sentiment: list[ThemeSentiment], interviews: int, excluded: int, options: StatsOptions) -> Statistics:
    """The six tables as one Statistics, logged: the in-memory and the stored path end here alike."""
    statistics = Statistics(engagement=engagement, ratings=ratings, prevalence=prevalence[0],
                            theme_tests=prevalence[1], correlations=correlations, sentiment=sentiment)
    logger.info("stats: %d interviews (%d excluded), %d rating cells, %d of %d theme × model differences "
                "significant (%s)", interviews, excluded, len(ratings), sum(p.significant for p in prevalence[0]),
                len(prevalence[0]), options.correction)
    return statistics


def stored_statistics(engagement_rows: Sequence[InterviewEngagement], excluded: set[str],
                      rating_cells: Iterable[RatingCell],
                      interview_counts: tuple[dict[str, int], dict[tuple[int, str], int]],
                      sentiment: dict[tuple[int, str], np.ndarray], options: StatsOptions = StatsOptions()) -> Statistics:
    """What `statistics_from` gives, from a stored job's rows as the repository aggregates them
    (miner.repository_nightly), with the low-quality interviews already left out of all but the
    engagement sums: `rating_cells` (per model × dimension, scores in interview order),
    `interview_counts` (included interviews per model and per theme × model) and `sentiment`
    ((theme id, model) → its themed units' sentiment in the job's order). Per rating and per themed
    unit it holds a float (and an int key) in an array, not a row object: +15 MiB at 300,000 units
    (BENCHMARKS.md `## Scale`). Same numbers as `statistics_from`."""
    cells = list(rating_cells)
    by_dimension: dict[str, list[RatingCell]] = defaultdict(list)
    for cell in cells:
        by_dimension[cell.dimension].append(cell)
    # An interview has one model, so a dimension's keys over its models' cells are unique.
    columns = {d: (np.concatenate([c.keys for c in group]), np.concatenate([c.scores for c in group]))
               for d, group in by_dimension.items()}
    return _assembled(engagement_from(engagement_rows, excluded),
                      rating_stats_from({(c.session_model, c.dimension): (c.scores, c.explicit) for c in cells}, options),
                      prevalence_from(*interview_counts, options), correlations_from(columns),
                      sentiment_from(sentiment, options), len(engagement_rows), len(excluded), options)

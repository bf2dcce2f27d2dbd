"""The opinion layer inside the analysis job (issue 12): answers → opinion units with a stance,
clusters → stance-coherent themes, themes → a tree node's stance.

An answer that carries no opinion (miner.opinion_units.is_no_opinion: a bare rating, yes/no,
"idk", "?") gives no unit: it is counted (reporting.no_opinion) and feeds ratings, never a theme.
Every other answer gives one unit per opinion span (miner.opinion_units.split_spans), with its
own id `<answer unit id>:<k>`, the span's text as what is embedded and quoted, the whole answer
and the span's offsets kept. Its stance comes from its text and vector once embedded (`unit_stances`).
With an LLM configured the units come from its quotes instead (miner.llm_units), with the LLM's
stance, which `job_unit_stances` keeps; answers it could not read are split here.
"""

from __future__ import annotations

import functools
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from miner.opinion_units import _CONTENTLESS, _NUMBER_NAMES, _RATING_WORDS, MIN_WORDS, is_no_opinion, split_spans
from miner.records import Unit
from miner.stance import MAJORITY, theme_stance
from miner.units import answer_hash

__all__ = ["job_unit_stances", "off_topic_themes", "opinion_units", "says_nothing", "split_by_stance", "theme_stances",
           "unit_theme_stance", "node_stance", "unit_stances"]

# A side's share of a cluster's polar units that makes it its own theme (and at least the
# clusterer's smallest cluster): below it, its units stay with the cluster's main side. The stance
# estimator errs on ~12% of the sample's polar units it gives a side (anchor estimator then: ~13%),
# up to ~30% within one planted theme: at 0.2
# and 0.3 those errors became themes of the wrong stance (benchmarks/bench_opinion_job.py,
# tests/test_pipeline.py); at 0.4 a cluster splits only when praise and complaint are both large.
MIN_STANCE_SHARE = 0.4
# A theme whose units mostly take no side (VADER finds no sentiment words) is neutral.
MIN_POLAR_SHARE = 0.3
# A theme at least this share of whose units are unrelated to their question and to opinions about an
# assistant (miner.quality.relatedness) holds chatter, not an opinion: its stance is neutral. On the
# sample study the off-topic theme ("Is it Friday yet") has 66% such units, every other theme 0-6%.
OFF_TOPIC_SHARE = 0.5
_RATING_ONLY = _RATING_WORDS | _CONTENTLESS | _NUMBER_NAMES | frozenset("out of / a an".split())


def unit_stances(texts: Sequence[str], vectors: np.ndarray, embedder) -> list[str]:
    """positive / negative / neutral for each unit: the job's offline estimator (miner.stance.job_stance,
    VADER + anchors; `miner eval opinions` uses stance.default_stance, see BENCHMARKS.md § Opinions)."""
    if not len(texts):
        return []
    return _job_stance(embedder).stances(texts, vectors)


@functools.lru_cache(maxsize=8)
def _job_stance(embedder):
    """One estimator per embedder object, so its anchor phrasings are embedded once per process,
    not once per assign part (they were 93% of a 2,000-unit part's time; BENCHMARKS.md § Scale)."""
    from miner.stance import job_stance

    return job_stance(embedder)


def job_unit_stances(units: Sequence[Unit], vectors: np.ndarray, embedder) -> list[str]:
    """The stance of each of the job's units: the LLM's for units it quoted (miner.llm_units), the
    offline estimate (`unit_stances`) for the others."""
    offline = [i for i, u in enumerate(units) if not (u.source == "llm" and u.stance)]
    stances = [u.stance for u in units]
    if offline:
        for i, stance in zip(offline, unit_stances([units[i].answer for i in offline], vectors[offline], embedder)):
            stances[i] = stance
    return stances


# Opinion units are cut at sentence and clause boundaries and contrastive conjunctions, not at
# every comma ("To be honest, it made up the sources" stays one unit): measured on the sample
# studies, benchmarks/bench_opinion_job.py.
SPLIT_AT_COMMAS = False


def says_nothing(text: str) -> bool:
    """A span that gives no opinion on its own: what is_no_opinion says of an answer, or only
    rating words ("4 out of 5", "mostly satisfied overall")."""
    if is_no_opinion(text):
        return True
    words = re.findall(r"[a-z0-9']+", text.lower().replace("’", "'"))
    rest = [w for w in words if w not in _RATING_ONLY and not w.isdigit()]
    if not rest:
        return True
    # A rating with a word or two more ("Mostly satisfied: a 4. Helpful overall"): the rating is the point.
    rated = any(w.isdigit() or w in _NUMBER_NAMES for w in words)
    return rated and len(rest) < MIN_WORDS


def opinion_units(answers: Sequence[Unit]) -> tuple[list[Unit], set[str]]:
    """The opinion units of these answer units, and the ids of the answers with no opinion
    (no-opinion answers, and answers whose every span says nothing, as "Mostly satisfied, 4")."""
    empty: set[str] = set()
    found: list[Unit] = []
    for answer in answers:
        spans = [] if is_no_opinion(answer.answer) else [
            span for span in split_spans(answer.answer, commas=SPLIT_AT_COMMAS)
            if not says_nothing(answer.answer[span.start:span.end])]
        if not spans:
            empty.add(answer.unit_id)
        for k, span in enumerate(spans):
            text = answer.answer[span.start:span.end]
            found.append(replace(answer, unit_id=f"{answer.unit_id}:{k}", answer=text, answer_hash=answer_hash(text),
                                 answer_unit_id=answer.unit_id, span_start=span.start, span_end=span.end,
                                 full_answer=answer.answer, source="split"))
    return found, empty


def min_theme_size(units: int) -> int:
    """The fewest units a stance part needs to be a theme of its own: the opinion clusterer's
    smallest cluster (miner.eval_opinions.OpinionClusterer)."""
    from miner.eval_opinions import OPINION_MCS_FRACTION

    return max(5, round((OPINION_MCS_FRACTION or 0.015) * units))


def split_by_stance(labels: np.ndarray, stances: Sequence[str | None], min_size: int) -> np.ndarray:
    """Clusters split by their units' stance, so praise and complaint about one aspect are two
    themes. The positive and the negative units of a cluster each become a theme when they are at
    least `min_size` units and MIN_STANCE_SHARE of the cluster's polar units; neutral units, and a
    stance too small for a theme of its own, go with the cluster's largest polar part (a cluster
    without a large enough polar part stays whole). -1 stays -1."""
    out = np.full(len(labels), -1, dtype=np.int64)
    members: dict[int, list[int]] = defaultdict(list)
    for index, label in enumerate(labels):
        if label >= 0:
            members[int(label)].append(index)
    next_id = 0
    for cluster in sorted(members):
        indices = members[cluster]
        polar = Counter(stances[i] for i in indices if stances[i] in ("positive", "negative"))
        total = sum(polar.values())
        kept = [s for s, c in polar.most_common() if c >= min_size and c >= MIN_STANCE_SHARE * total]
        ids = {stance: next_id + n for n, stance in enumerate(kept)} or {None: next_id}
        next_id += len(ids)
        main = next(iter(ids.values()))
        for i in indices:
            out[i] = ids.get(stances[i], main)
    return out


def unit_theme_stance(stances: Sequence[str | None], majority: float = MAJORITY,
                      min_polar: float = MIN_POLAR_SHARE) -> str:
    """A theme's stance from its units': neutral when fewer than `min_polar` of them take a side,
    else the side of at least `majority` of those that do, else mixed."""
    polar = [s for s in stances if s in ("positive", "negative")]
    if not stances or len(polar) < min_polar * len(stances):
        return "neutral"
    return theme_stance(polar, majority)


def node_stance(theme_stances: dict[int, str], theme_sizes: dict[int, int], theme_ids: Sequence[int],
                majority: float = MAJORITY) -> str:
    """A tree node's stance from its themes', weighted by their sizes: the stance of at least
    `majority` of its answers, else mixed (a single theme: its own)."""
    weights: Counter[str] = Counter()
    for theme in theme_ids:
        weights[theme_stances.get(theme) or "neutral"] += theme_sizes.get(theme, 0)
    total = sum(weights.values())
    if not total:
        return "neutral"
    stance, weight = weights.most_common(1)[0]
    return stance if weight / total >= majority else "mixed"


def theme_stances(units: Sequence[Unit], labels: np.ndarray, off_topic: set[int] = frozenset()) -> dict[int, str]:
    """Theme id → its stance from its units' (miner.stance.theme_stance); neutral for a theme in
    `off_topic` (`off_topic_themes`: people talked about something else, whatever words they used)."""
    by_theme: dict[int, list[str]] = defaultdict(list)
    for unit, label in zip(units, labels):
        if label >= 0:
            by_theme[int(label)].append(unit.stance or "neutral")
    return {theme: "neutral" if theme in off_topic else unit_theme_stance(s) for theme, s in by_theme.items()}


def off_topic_themes(samples: dict[int, tuple[Sequence[Unit], np.ndarray]], embedder,
                     share: float = OFF_TOPIC_SHARE) -> set[int]:
    """The themes (id → a sample of its units and their vectors) at least `share` of whose units are
    unrelated both to their question and to opinions about an assistant, by the quality filter's rule
    and threshold (miner.quality.relatedness, QualityOptions.min_relatedness)."""
    from miner.quality import QualityOptions, opinion_direction, relatedness

    samples = {t: (units, vectors) for t, (units, vectors) in samples.items() if len(units)}
    if not samples:
        return set()
    # The job's stance estimator's anchors (embedded once per embedder; the label step just used them).
    opinion = opinion_direction(_job_stance(embedder).anchor.estimator.anchor_vectors())
    questions = sorted({u.question for units, _ in samples.values() for u in units})
    question_vectors = dict(zip(questions, embedder.embed(questions)))
    threshold = QualityOptions().min_relatedness
    return {theme for theme, (units, vectors) in samples.items()
            if np.mean([relatedness(v, question_vectors[u.question], opinion) < threshold
                        for u, v in zip(units, vectors)]) >= share}

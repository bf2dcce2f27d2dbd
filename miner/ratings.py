"""Ratings stage: a 1-5 score per interview and dimension, explicit where people gave one.

Explicit answers ("4", "4/5", "four out of five", "a solid 8 out of 10", "between 3 and 4")
are parsed and rescaled to 1-5. Otherwise the score is inferred: with an LLM by one call per
interview (miner/llm_rate.py); offline by `AnchorSentiment`, which scores an answer by how much
nearer its embedding is to hand-written praise than to complaint phrasings (no training data;
measured in BENCHMARKS.md § Ratings).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import defaultdict
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from miner.protocols import Embedder
from miner.dimensions import DimensionLabel
from miner.records import Rating, Unit

logger = logging.getLogger(__name__)

# Dimensions a score is given for; "improvement" answers are suggestions, not verdicts, and
# feed themes only (an explicit number given to an improvement question is still kept).
RATED_DIMENSIONS: tuple[str, ...] = ("understanding", "needs", "credibility", "satisfaction", "overall")
ANCHORS_PATH = Path(__file__).resolve().parent / "data" / "sentiment_anchors.json"
EVIDENCE_CHARS = 200

_NUMBER_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "a hundred": 100, "hundred": 100}
_NUM = r"(\d+(?:\.\d+)?)"
_TO = r"\s*(?:-|to|and|or)\s*"
_SCALE_IN_TEXT = re.compile(
    rf"(?:(?:on\s+)?(?:a\s+|the\s+)?scale\s+(?:of\s+|from\s+)?)?\b([01])\s*(?:\([^)]*\)\s*)?(?:-|to)\s*(\d+)"
    rf"(?:\s*\([^)]*\))?(?:\s*(?:-?\s*point\s+)?scale)?")
_POINT_SCALE = re.compile(rf"\b{_NUM}\s*-?\s*(?:point|star)\s+scale")
_OUT_OF = re.compile(rf"\b{_NUM}(?:{_TO}{_NUM})?\s*(/|out\s+of|on\s+a\s+scale\s+of|of)\s*{_NUM}\b")
# Scales a self-describing rating in an answer to an open question may be on ("24/7" is none).
_COMMON_SCALES = (5, 7, 10, 100)
_STARS = re.compile(rf"\b{_NUM}(?:{_TO}{_NUM})?\s*stars?\b")
_PERCENT = re.compile(rf"\b{_NUM}\s*(?:%|percent)")
_RANGE = re.compile(rf"\b{_NUM}\s*(?:-|to|or)\s*{_NUM}\b|\bbetween\s+(?:a\s+)?{_NUM}\s+and\s+(?:a\s+)?{_NUM}\b")
_ANY_NUMBER = re.compile(_NUM)
_ASKS_FOR_RATING = re.compile(
    r"\b(rate|rating|score|scale|stars?|grade)\b|\bout of \d|\b[01]\s*(?:-|to)\s*\d+\b", re.IGNORECASE)
# Verbal answers to a rating question, longest phrase first; only whole short answers count.
_VERBAL = (
    (1, ("not satisfied at all", "not at all satisfied", "very dissatisfied", "extremely dissatisfied",
         "completely dissatisfied", "totally dissatisfied", "very unhappy", "really unhappy",
         "terrible", "awful", "horrible", "useless")),
    (5, ("extremely satisfied", "completely satisfied", "totally satisfied", "fully satisfied",
         "very satisfied", "really satisfied", "very happy", "really happy", "excellent", "perfect",
         "loved it", "outstanding")),
    (2, ("not very satisfied", "somewhat dissatisfied", "slightly dissatisfied", "a bit disappointed",
         "disappointed", "dissatisfied", "unsatisfied", "unhappy", "not great", "poor")),
    (3, ("neither satisfied nor dissatisfied", "moderately satisfied", "middle of the road", "neutral", "so-so", "so so",
         "okay", "average", "mixed", "meh", "ok")),
    (4, ("somewhat satisfied", "pretty satisfied", "quite satisfied", "mostly satisfied",
         "fairly satisfied", "satisfied", "happy", "pretty good", "very good", "good")),
)
_VERBAL_MAX_WORDS = 8


_DECIMAL_COMMA = re.compile(r"(\d),(\d)(?!\d)")  # "3,5" is a European decimal
# One pass for every number word (as many passes, one per word, gave the same text: a word becomes
# digits, which makes or breaks no word boundary; "a hundred" is tried before "hundred").
_NUMBER_WORD = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in _NUMBER_WORDS) + r")\b")
_AND_A_HALF = re.compile(r"(\d)\s+and\s+a\s+half\b")
_ISH = re.compile(r"(\d)\s*(?:-ish|ish)\b")


def _normalise(text: str) -> str:
    text = text.lower().replace("–", "-").replace("—", "-").replace("⁄", "/")
    text = _DECIMAL_COMMA.sub(r"\1.\2", text)
    text = _NUMBER_WORD.sub(lambda m: str(_NUMBER_WORDS[m.group(0)]), text)
    text = _AND_A_HALF.sub(r"\1.5", text)
    return _ISH.sub(r"\1", text)


def question_scale(question: str) -> int | None:
    """The top of the scale a question asks for ("1 to 10" → 10, "five-point scale" → 5), if any."""
    text = _normalise(question)
    if (match := _SCALE_IN_TEXT.search(text)) and int(match.group(2)) >= 3:
        return int(match.group(2))
    if match := _POINT_SCALE.search(text):
        return int(float(match.group(1)))
    if match := re.search(r"out\s+of\s+(\d+)", text):
        return int(match.group(1))
    return None


def asks_for_rating(question: str) -> bool:
    """Whether the question asks for a score, so that a bare number in the answer is one."""
    return bool(_ASKS_FOR_RATING.search(question))


def rescale(value: float, scale: float) -> float | None:
    """A value on 1..scale (0..100 for percentages) mapped linearly onto 1..5; None if off the scale."""
    if value < 0 or value > scale or scale < 2:
        return None
    if scale == 5:
        return float(min(max(value, 1.0), 5.0))
    bottom = 0.0 if scale >= 100 else 1.0
    return float(min(max(1 + 4 * (value - bottom) / (scale - bottom), 1.0), 5.0))


def parse_rating(text: str, scale: int = 5, bare: bool = True) -> float | None:
    """A 1-5 score stated in an answer, or None.

    `scale` is the top of the scale the question asked for (bare numbers are on it); with
    `bare=False` (the question asked for no score) only self-describing forms count: "4/5",
    "8 out of 10", "4 stars", "80%".
    """
    text = _normalise(text)
    stated_scale = None
    if match := _SCALE_IN_TEXT.search(text):
        if "scale" in match.group(0) and int(match.group(2)) >= 3:
            stated_scale = int(match.group(2))
            text = text[:match.start()] + " " + text[match.end():]
    for match in _OUT_OF.finditer(text):
        low, high, word, top = match.group(1), match.group(2), match.group(3), float(match.group(4))
        if not bare and (word == "of" or top not in _COMMON_SCALES):
            continue  # "2 of 3 answers", "24/7": counts, not ratings
        value = float(low) if high is None else (float(low) + float(high)) / 2
        if top >= 3 and (score := rescale(value, top)) is not None:
            return score
    if match := _STARS.search(text):
        low, high = match.group(1), match.group(2)
        return rescale(float(low) if high is None else (float(low) + float(high)) / 2, 5)
    if not bare:
        return None
    if match := _PERCENT.search(text):
        return rescale(float(match.group(1)), 100)
    scale = stated_scale or scale
    if match := _RANGE.search(text):
        low, high = (g for g in match.groups() if g is not None)
        if float(low) < float(high):
            return rescale((float(low) + float(high)) / 2, scale)
    numbers = _ANY_NUMBER.findall(text)
    if len(numbers) == 1:
        return rescale(float(numbers[0]), scale)
    if not numbers:
        return _verbal_rating(text)
    return None


_VERBAL_PHRASES = sorted(((phrase, score) for score, phrases in _VERBAL for phrase in phrases),
                         key=lambda item: -len(item[0]))


def _verbal_rating(text: str) -> float | None:
    """A scale point said in words ("very satisfied"), in the first short clause that says one."""
    for clause in re.split(r"[,.;:!?()]|\s-\s|\b(?:because|but|since|though|although|as)\b", text):
        words = re.findall(r"[a-z'-]+", clause)
        if not words or len(words) > _VERBAL_MAX_WORDS:
            continue
        joined = " ".join(words)
        for phrase, score in _VERBAL_PHRASES:  # longest first: "not very satisfied" before "very satisfied"
            if match := re.search(rf"(?<![a-z-]){re.escape(phrase)}(?![a-z-])", joined):
                if re.search(r"\b(not|never|no)\b|n't\b", joined[:match.start()]):
                    return None  # "not happy", "wasn't excellent": negated, not a scale point
                return float(score)
    return None


@cache
def load_anchors(path: Path = ANCHORS_PATH) -> tuple[tuple[str, ...], tuple[str, ...]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(data["positive"]), tuple(data["negative"])


class AnchorSentiment:
    """Offline sentiment of answers from their embeddings, on the 1-5 scale (3 = neutral).

    raw = mean cosine to the positive anchor phrasings − mean cosine to the negative ones;
    score = 3 + 2·tanh(raw / (WIDTH · pole)), where `pole` is the median |raw| of the anchors
    themselves (each left out of its own pole). WIDTH = 2 was picked on the synthetic sample
    study (mean absolute error against its true ratings, flat between 2 and 3); an answer as
    clear as an anchor scores ~3.9.
    """

    WIDTH = 2.0

    name = "anchor-sentiment-v2"

    def __init__(self, embedder: Embedder, anchors: tuple[Sequence[str], Sequence[str]] | None = None):
        self.embedder = embedder
        self.anchors = anchors or load_anchors()
        self._positive: np.ndarray | None = None
        self._negative: np.ndarray | None = None
        self.pole = 1.0

    def _load(self) -> tuple[np.ndarray, np.ndarray]:
        if self._positive is None:
            positive, negative = (self.embedder.embed(list(texts)) for texts in self.anchors)
            own_pos = [(positive[i] @ np.delete(positive, i, 0).T).mean() - (positive[i] @ negative.T).mean()
                       for i in range(len(positive))]
            own_neg = [(negative[i] @ np.delete(negative, i, 0).T).mean() - (negative[i] @ positive.T).mean()
                       for i in range(len(negative))]
            self.pole = float(np.median(np.abs(np.concatenate([own_pos, own_neg]))))
            self._positive, self._negative = positive, negative
        return self._positive, self._negative

    def anchor_vectors(self) -> np.ndarray:
        """All anchor phrasings' vectors: what an opinion about an assistant looks like."""
        positive, negative = self._load()
        return np.vstack([positive, negative])

    def raw(self, vectors: np.ndarray) -> np.ndarray:
        """How much nearer each vector is to the praise than to the complaints."""
        positive, negative = self._load()
        if len(vectors) == 0:
            return np.zeros(0)
        return (vectors @ positive.T).mean(axis=1) - (vectors @ negative.T).mean(axis=1)

    def to_scale(self, raw: np.ndarray | float) -> np.ndarray:
        self._load()
        return 3.0 + 2.0 * np.tanh(np.asarray(raw, dtype=float) / (self.WIDTH * self.pole))


def explicit_ratings(units: Sequence[Unit], dimensions: dict[str, DimensionLabel]) -> list[Rating]:
    """Scores people stated, one per interview and dimension (the first one given counts)."""
    ratings: dict[tuple[str, str], Rating] = {}
    for unit in units:
        dimension = dimensions[unit.unit_id].dimension
        if dimension == "other":
            continue
        asked = asks_for_rating(unit.question)
        score = parse_rating(unit.answer, scale=question_scale(unit.question) or 5, bare=asked)
        if score is not None and (unit.interview_id, dimension) not in ratings:
            ratings[(unit.interview_id, dimension)] = Rating(
                unit.interview_id, unit.session_model, dimension, round(score, 3), "explicit",
                unit.answer[:EVIDENCE_CHARS], unit.unit_id)
    return list(ratings.values())


def estimate_ratings(units: Sequence[Unit], dimensions: dict[str, DimensionLabel], raw: np.ndarray,
                     estimator: AnchorSentiment, skip_units: set[str] = frozenset()) -> list[Rating]:
    """Scores inferred from answer sentiment: each rated dimension from the answers to its
    questions, and `overall` from all answers to rated dimensions. `skip_units` (explicit
    ratings, or hidden ones) are left out."""
    by_interview: dict[str, list[tuple[str, float, Unit]]] = defaultdict(list)
    for unit, value in zip(units, raw):
        dimension = dimensions[unit.unit_id].dimension
        if dimension in RATED_DIMENSIONS and unit.unit_id not in skip_units:
            by_interview[unit.interview_id].append((dimension, float(value), unit))
    ratings: list[Rating] = []
    for interview_id, answers in by_interview.items():
        model = answers[0][2].session_model
        groups = defaultdict(list)
        for dimension, value, unit in answers:
            groups[dimension].append((value, unit))
        groups["overall"] = [(value, unit) for _, value, unit in answers]
        for dimension in RATED_DIMENSIONS:
            if not groups.get(dimension):
                continue
            values = [value for value, _ in groups[dimension]]
            score = float(estimator.to_scale(float(np.mean(values))))
            # The answer pulling hardest in the score's direction is the evidence.
            value, unit = max(groups[dimension], key=lambda vu: vu[0] * math.copysign(1, score - 3))
            ratings.append(Rating(interview_id, model, dimension, round(score, 3), "estimate",
                                  unit.answer[:EVIDENCE_CHARS], unit.unit_id))
    return ratings


def rate_interviews(units: Sequence[Unit], dimensions: dict[str, DimensionLabel], vectors: np.ndarray,
                    estimator: AnchorSentiment, use_explicit: bool = True) -> tuple[list[Rating], np.ndarray]:
    """Ratings per interview and dimension (explicit first, estimates for the rest) and each
    unit's sentiment on 1-5. With `use_explicit=False` the explicit answers are hidden: not
    used as scores and not shown to the estimator (to measure the estimator against them)."""
    raw = estimator.raw(vectors)
    explicit = explicit_ratings(units, dimensions)
    explicit_units = {r.unit_id for r in explicit}
    estimates = estimate_ratings(units, dimensions, raw, estimator, skip_units=explicit_units)
    if not use_explicit:
        return estimates, estimator.to_scale(raw)
    stated = {(r.interview_id, r.dimension) for r in explicit}
    ratings = explicit + [r for r in estimates if (r.interview_id, r.dimension) not in stated]
    logger.info("ratings: %d explicit, %d estimated (%s)", len(explicit), len(ratings) - len(explicit),
                estimator.name)
    return ratings, estimator.to_scale(raw)

"""Offline opinion labels: a short phrase that says the opinion, with the theme's stance.

The candidates are what people said, not keywords: the short clauses (1 to ``MAX_WORDS`` words,
cut at sentence ends, commas and ``, and``; openers such as "honestly", "I think", "well" dropped)
of the theme's units nearest its centroid, until ``MAX_CANDIDATES`` are found. Each is embedded and
the one nearest the centroid wins, unless its own stance is the opposite of the theme's. A clause
keeps its predicate, so the label says what people think ("it cites sources that are fake",
"it refused a totally harmless question") where the n-grams this replaced named the topic
("quotes and sources", "code"): BENCHMARKS.md § Opinions, benchmarks/bench_labels.py. A theme
without a short clause falls back to its most central unit, cut to ``MAX_WORDS`` words.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from miner.components import Embedder
from miner.opinion_job import unit_stances
from miner.scrub import scrub_text
from miner.stance import theme_stance

__all__ = ["OpinionLabel", "label_opinion_theme"]

MAX_WORDS = 6
# Clauses embedded per theme (from its most central units: 22-797, median 72, on bench_labels.py's
# themes): embedding them is most of the labeller's time, ~0.4-0.9 s a theme on 2 busy CPU cores;
# 30, 50 and 100 gave the same sample-study scores (BENCHMARKS.md § Opinions).
MAX_CANDIDATES = 30
_OPPOSITE = {"positive": "negative", "negative": "positive"}
# Where a unit is cut into clauses: sentence ends and brackets, commas (with a conjunction after).
_CLAUSE = re.compile(r"[.;!?:()\n]+|,\s*(?:and|plus|but|so)?\s*", re.IGNORECASE)
# How people speak, not what they think (as miner.stance._DISCOURSE): dropped at a clause's ends.
_OPENER = re.compile(r"^(?:(?:well|hmm+|so|yeah|yes|ok|okay|also|and|but|plus|mostly|overall|honestly|frankly|"
                     r"tbh|to be (?:honest|fair)|i think|i guess|i'd say|i would say|i (?:feel|felt) like|"
                     r"i noticed|i found|for me|personally|in my opinion)\b[,:]?\s*)+", re.IGNORECASE)
_CLOSER = re.compile(r"(?:\s*,?\s*\b(?:i guess|i think|to be (?:honest|fair)|honestly|overall|for sure|tbh|lol)"
                     r"[\s.!?…]*)+$", re.IGNORECASE)
_EDGES = " .,!?;:-…\"'"
_PRONOUN_I = re.compile(r"\bi\b")


@dataclass(frozen=True)
class OpinionLabel:
    phrase: str
    stance: str  # positive | negative | mixed | neutral

    @property
    def label(self) -> str:
        return f"{self.phrase} ({self.stance})"


def _clauses(text: str) -> Iterator[tuple[str, str]]:
    """The unit's clauses of 1 to MAX_WORDS words without openers and closers, as (lower-cased key,
    the clause as written). The key is what is compared and embedded, so the choice does not depend
    on how people type; the label shows the words as written ("AI", "ChatGPT"). The text is scrubbed
    before it is cut (a cut e-mail address would no longer look like one) and a clause with a
    placeholder is skipped: the reporting views show a label as is."""
    for piece in _CLAUSE.split(scrub_text(text).replace("’", "'")):
        clause = _CLOSER.sub("", _OPENER.sub("", " ".join(piece.split()).strip(_EDGES))).strip(_EDGES)
        if clause and len(clause.split()) <= MAX_WORDS and "[" not in clause:
            yield clause.lower(), clause


def _shown(phrase: str) -> str:
    """A label as shown: "i" as "I", the first letter a capital."""
    phrase = _PRONOUN_I.sub("I", phrase)
    return phrase[:1].upper() + phrase[1:]


def _candidates(texts: Sequence[str], closeness: np.ndarray, limit: int) -> dict[str, str]:
    """Distinct short clauses of the units (lower-cased key → as first written), most central units
    first, at most `limit`."""
    found: dict[str, str] = {}
    for index in np.argsort(-closeness, kind="stable"):
        for key, clause in _clauses(texts[index]):
            found.setdefault(key, clause)
        if len(found) >= limit:
            break
    return dict(list(found.items())[:limit])


def label_opinion_theme(texts: Sequence[str], vectors: np.ndarray, stances: Sequence[str],
                        embedder: Embedder, max_candidates: int = MAX_CANDIDATES) -> OpinionLabel:
    """A theme's units (texts, their vectors, their stances) → a short phrase and the theme's
    stance (positive / negative / neutral by majority of units, else mixed)."""
    if not texts:
        raise ValueError("a theme needs at least one unit to be labelled")
    stance = theme_stance(stances)
    vectors = np.asarray(vectors, dtype=np.float32)
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    closeness = vectors @ centroid
    candidates = _candidates(texts, closeness, max_candidates)
    if candidates:
        keys = list(candidates)
        embedded = np.asarray(embedder.embed(keys), dtype=np.float32)
        score = embedded @ centroid
        if stance in _OPPOSITE:
            score[[s == _OPPOSITE[stance] for s in unit_stances(keys, embedded, embedder)]] = -np.inf
        if np.isfinite(score).any():
            return OpinionLabel(_shown(candidates[keys[int(np.argmax(score))]]), stance)
    central = int(np.argmax(closeness))
    phrase = " ".join(scrub_text(texts[central]).strip(" .!?").split()[:MAX_WORDS])
    return OpinionLabel(_shown(phrase), stance)

"""Offline opinion labels: a short phrase that says the opinion, with the theme's stance.

KeyBERT-style (as BERTopic's KeyBERTInspired): candidate n-grams (1-4 words, not starting or
ending with a stop word) that at least ``MIN_SHARE`` of the theme's units contain are embedded
and ranked by cosine to the theme's centroid, times a small bonus for being said often; the
phrase closest to what the units say wins — "made up sources", not a keyword triple. A theme
without such an n-gram falls back to its most central unit, cut to ``MAX_WORDS`` words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from miner.components import Embedder
from miner.stance import theme_stance

__all__ = ["OpinionLabel", "label_opinion_theme"]

MIN_SHARE = 0.1
MAX_WORDS = 6
_TOKEN = re.compile(r"[a-z0-9][a-z0-9'\-]*")
# Filler that says nothing about the opinion, beyond sklearn's English stop words.
_FILLER = frozenset("""it's its i'm i'd i've don't didn't doesn't wasn't isn't really just like think honestly
    guess pretty also lot bit kind sort thing things way overall tbh maybe actually""".split())


# Stop words that carry the opinion at a phrase's edge: "too long", "made up", "not helpful".
_KEEP = frozenset("too up not no never very much less more out off down well".split())


@dataclass(frozen=True)
class OpinionLabel:
    phrase: str
    stance: str  # positive | negative | mixed | neutral

    @property
    def label(self) -> str:
        return f"{self.phrase} ({self.stance})"


def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return (frozenset(ENGLISH_STOP_WORDS) | _FILLER) - _KEEP


def _candidates(texts: Sequence[str], max_n: int = 4) -> dict[str, int]:
    """n-gram → number of units containing it, for n-grams with content words at both ends."""
    stop = _stop_words()
    counts: dict[str, int] = {}
    for text in texts:
        tokens = _TOKEN.findall(text.lower().replace("’", "'"))
        seen = set()
        for n in range(1, max_n + 1):
            for i in range(len(tokens) - n + 1):
                gram = tokens[i:i + n]
                if gram[0] in stop or gram[-1] in stop or gram[0].isdigit() or n == 1 and gram[0] in _KEEP:
                    continue
                seen.add(" ".join(gram))
        for gram in seen:
            counts[gram] = counts.get(gram, 0) + 1
    return counts


def label_opinion_theme(texts: Sequence[str], vectors: np.ndarray, stances: Sequence[str],
                        embedder: Embedder, max_candidates: int = 200) -> OpinionLabel:
    """A theme's units (texts, their vectors, their stances) → a short phrase and the theme's
    stance (positive / negative / neutral by majority of units, else mixed)."""
    if not texts:
        raise ValueError("a theme needs at least one unit to be labelled")
    stance = theme_stance(stances)
    vectors = np.asarray(vectors, dtype=np.float32)
    centroid = vectors.mean(axis=0)
    centroid /= np.linalg.norm(centroid) or 1.0
    floor = max(2, int(np.ceil(MIN_SHARE * len(texts)))) if len(texts) > 2 else 1
    counts = {g: c for g, c in _candidates(texts).items() if c >= floor}
    if counts:
        grams = sorted(counts, key=lambda g: (-counts[g], g))[:max_candidates]
        sims = embedder.embed(grams) @ centroid
        # Longer phrases say more than a lone keyword; frequency breaks near-ties.
        share = np.array([counts[g] / len(texts) for g in grams])
        words = np.array([len(g.split()) for g in grams])
        score = sims + 0.1 * np.log1p(share) + 0.06 * np.minimum(words, 3)
        return OpinionLabel(grams[int(np.argmax(score))], stance)
    central = int(np.argmax(vectors @ centroid))
    phrase = " ".join(texts[central].strip(" .!?").split()[:MAX_WORDS])
    return OpinionLabel(phrase, stance)

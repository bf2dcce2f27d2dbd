"""Opinion units: an answer split into spans that each carry one opinion.

Offline split (:func:`split_opinions`): sentence boundaries, ";", commas, and contrastive
conjunctions ("but", "although", "however", "though", "yet", "while", "whereas") start a
new unit; a fragment shorter than ``MIN_WORDS`` words is joined to its neighbour. Each
unit is a span ``answer[start:end]`` of the answer (char offsets), so it can be quoted.

With an LLM the units come from the model instead; :func:`validate_quoted_units` checks
that each quoted unit is a span of the answer (whitespace and case normalised) and
returns its offsets, so a paraphrase or an invented quote never becomes a unit.

No-opinion answers (a bare rating, yes/no, "idk", "?", "fine", "meh") are recognised by
:func:`is_no_opinion`: they feed ratings and are counted, never themed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from miner.ratings import parse_rating
from miner.records import Unit

__all__ = ["OpinionUnit", "Span", "split_opinions", "split_spans", "split_aspect_spans", "is_no_opinion",
           "validate_quoted_units", "QuoteError"]

# Commas also split (after the short-fragment rule, "quick, friendly and accurate" stays one
# unit): measured on MAMS validation, BENCHMARKS.md § Opinions.
SPLIT_AT_COMMAS = True
MIN_WORDS = 3  # a unit of fewer words is too short to carry an opinion on its own

STANCES = ("positive", "negative", "neutral")


@dataclass(frozen=True)
class OpinionUnit:
    """One opinion inside an answer: a span of the answer unit ``answer_unit_id``."""

    unit_id: str  # "<answer unit id>#<n>"
    answer_unit_id: str
    interview_id: str
    question: str
    text: str
    start: int
    end: int
    stance: str | None = None  # positive | negative | neutral, set by miner.stance


@dataclass(frozen=True)
class Span:
    start: int
    end: int


_WORD = re.compile(r"[A-Za-z0-9']+")
# Sentence ends: ., !, ? (runs of them) or a newline, followed by space / end.
_SENTENCE_END = re.compile(r"(?<!\b[A-Z])(?<!\be\.g)(?<!\bi\.e)[.!?]+[\"')\]]*(?=\s|$)|\n+")
# Where a clause starts. "but", "although", "however", "whereas" start one anywhere; the
# ambiguous ones ("though": "it was good though"; "yet": "not yet"; "while": "in a while")
# only after a comma or dash.
_CLAUSE_BREAK = re.compile(
    r";|\s[-–—]+\s|"
    r"(?:,\s*|\s)(?=(?:but|although|however|whereas)\b)|"
    r",\s*(?=(?:though|yet|while)\b)",
    re.IGNORECASE)
_LEADING_CONJUNCTION = re.compile(r"(?:but|although|however|whereas|though|yet|while|and)\b[,\s]*",
                                  re.IGNORECASE)
_BARE_CONJUNCTION = re.compile(r"(?:but|although|however|whereas|though|yet|while|and)[,.]?", re.IGNORECASE)
_TRIM = " \t\r\n,;:-–—"


def _words(text: str) -> int:
    return len(_WORD.findall(text))


def _trim(answer: str, start: int, end: int) -> Span | None:
    while start < end and answer[start] in _TRIM:
        start += 1
    while end > start and answer[end - 1] in _TRIM:
        end -= 1
    return Span(start, end) if end > start else None


def _pieces(answer: str, commas: bool) -> list[Span]:
    """Sentence and clause pieces, before short ones are joined."""
    cuts = {0, len(answer)}
    if commas:
        cuts.update(m.start() for m in re.finditer(r",(?=\s)", answer))
    for match in _SENTENCE_END.finditer(answer):
        cuts.add(match.end())
    for match in _CLAUSE_BREAK.finditer(answer):
        cuts.add(match.start())
        cuts.add(match.end())
    bounds = sorted(cuts)
    spans = []
    for start, end in zip(bounds, bounds[1:]):
        if span := _trim(answer, start, end):
            spans.append(span)
    return spans


def _drop_conjunction(answer: str, span: Span) -> Span:
    """"but it made up the sources" → "it made up the sources" (the stance is in the rest)."""
    match = _LEADING_CONJUNCTION.match(answer, span.start, span.end)
    if match and _words(answer[match.end():span.end]) >= MIN_WORDS:
        return Span(match.end(), span.end)
    return span


def split_spans(answer: str, min_words: int = MIN_WORDS, commas: bool = SPLIT_AT_COMMAS) -> list[Span]:
    """Char spans of the opinion units of one answer, in order; fragments of fewer than
    `min_words` words are joined to the previous unit (to the next one when first), and a bare
    contrastive conjunction ("…, however, it …") to the clause it opens. With
    `commas`, a comma followed by a space is a clause boundary too."""
    pieces = _pieces(answer, commas)
    joined: list[Span] = []
    carried: Span | None = None  # a bare conjunction ("…, however, it …") waits for the clause it opens
    for piece in pieces:
        if _BARE_CONJUNCTION.fullmatch(answer, piece.start, piece.end):
            carried = Span(carried.start if carried else piece.start, piece.end)
            continue
        if carried is not None:
            piece, carried = Span(carried.start, piece.end), None
        if joined and (_words(answer[piece.start:piece.end]) < min_words
                       or _words(answer[joined[-1].start:joined[-1].end]) < min_words):
            joined[-1] = Span(joined[-1].start, piece.end)
        else:
            joined.append(piece)
    if carried is not None:  # the answer ends on one ("it was fast though")
        joined = joined[:-1] + [Span(joined[-1].start, carried.end)] if joined else [carried]
    return [_drop_conjunction(answer, span) for span in joined]


# Where an aspect-level unit starts inside a clause (`split_aspect_spans`): coordinated and
# parenthesised phrases ("the pasta and the wine list", "(didn't bring us wine …)"), a "with"
# phrase, and subordinate clauses ("which …", "because …", "when …").
_ASPECT_BREAK = re.compile(r"(?<=\s)(?:and|with|which|that|because|since|so|as|when|if)\s|[()]", re.IGNORECASE)


def _join_short(answer: str, pieces: Sequence[Span], min_words: int) -> list[Span]:
    """A piece of fewer than `min_words` words joined to the previous one (to the next when first)."""
    joined: list[Span] = []
    for piece in pieces:
        if joined and (_words(answer[piece.start:piece.end]) < min_words
                       or _words(answer[joined[-1].start:joined[-1].end]) < min_words):
            joined[-1] = Span(joined[-1].start, piece.end)
        else:
            joined.append(piece)
    return joined


def split_aspect_spans(answer: str, min_words: int = MIN_WORDS) -> list[Span]:
    """:func:`split_spans` (with commas), each unit cut again where another aspect can start:
    at "and", "with", a subordinate clause ("which", "because", "when", …) or a parenthesis,
    short fragments joined back as there ("quick and accurate" stays one unit). One opinion
    on one aspect per unit, for texts that judge several aspects in one sentence
    ("the service was inattentive (didn't bring us wine til our main course …)"):
    `miner eval opinions`' units (MAMS validation, BENCHMARKS.md § Opinions); the analysis
    job keeps :func:`split_spans`."""
    out: list[Span] = []
    for span in split_spans(answer, min_words, commas=True):
        cuts = [span.start, *(m.start() for m in _ASPECT_BREAK.finditer(answer, span.start, span.end)), span.end]
        pieces = [p for a, b in zip(cuts, cuts[1:]) if (p := _trim(answer, a, b))]
        out.extend(_drop_conjunction(answer, p) for p in _join_short(answer, pieces, min_words))
    return out


def split_opinions(units: Sequence[Unit], min_words: int = MIN_WORDS,
                   commas: bool = SPLIT_AT_COMMAS) -> list[OpinionUnit]:
    """Answer units → opinion units (no-opinion answers give none; see :func:`is_no_opinion`)."""
    out: list[OpinionUnit] = []
    for unit in units:
        if is_no_opinion(unit.answer):
            continue
        for n, span in enumerate(split_spans(unit.answer, min_words, commas)):
            out.append(OpinionUnit(f"{unit.unit_id}#{n}", unit.unit_id, unit.interview_id, unit.question,
                                   unit.answer[span.start:span.end], span.start, span.end))
    return out


# --- no-opinion answers ------------------------------------------------------------------

# Whole answers that say nothing about the assistant (after lower-casing and stripping
# punctuation): any mix of up to 8 of these words ("yeah fine", "lol idk", "good good"), or
# one of the phrases.
_CONTENTLESS = frozenset("""
    yes no yeah yep yup nope nah na n/a none nothing idk dunno ok okay k fine good great bad meh
    whatever lol lmao haha hmm hm um umm uh ai oh sure maybe sometimes kinda sorta same nice cool
    """.split())
_CONTENTLESS_PHRASES = frozenset(line.strip() for line in """
    not sure
    no idea
    i dont know
    i don't know
    don't know
    dont know
    no comment
    no comments
    not really
    yes and no
    kind of
    sort of
    i guess
    guess so
    i think so
    not much
    nothing much
    it's fine
    its fine
    it was fine
    it is fine
    it was ok
    it was okay
    all good
    no opinion
    nothing really
    not applicable
    nothing to add
    nothing else
    """.strip().splitlines())
_RATING_WORDS = frozenset("""
    i d say would give it a an rate rating the about around maybe probably like solid strong
    out of stars star points point overall so somewhere between and or rather quite fairly pretty
    very somewhat moderately mostly really extremely completely totally satisfied dissatisfied
    unsatisfied happy unhappy neutral satisfaction level my is its it's was be im i'm am i'd give
    i'll i'll gave would've
    """.split())


def _norm(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9/'. ]+", " ", text)
    return re.sub(r"\s+", " ", text.replace(".", " ")).strip()


def is_no_opinion(answer: str) -> bool:
    """Whether an answer carries no opinion to theme: empty or only punctuation ("?"), a
    contentless word or phrase ("idk", "fine", "meh", "whatever", "yes", "lol", "good good"),
    or only a rating ("4/5", "fairly satisfied, 3 out of 5", "I'd give it a 4")."""
    text = _norm(answer)
    if not _WORD.search(text):
        return True
    words = text.split()
    if text in _CONTENTLESS_PHRASES:
        return True
    if len(words) <= 8 and all(w in _CONTENTLESS for w in words):
        return True  # "yeah fine", "lol idk", "ok sure"
    if parse_rating(answer, bare=True) is not None:
        rest = [w for w in re.findall(r"[a-z']+", text)
                if w not in _RATING_WORDS and w not in _CONTENTLESS and w not in _NUMBER_NAMES]
        return not rest  # a number and rating words only: "3 out of 5", "fairly satisfied, 4"
    return False


_NUMBER_NAMES = frozenset("zero one two three four five six seven eight nine ten half hundred".split())


# --- LLM-quoted units --------------------------------------------------------------------

class QuoteError(ValueError):
    """A unit the model returned is not a span of the answer."""


def _folded(text: str) -> tuple[str, list[int]]:
    """Lower-cased text with whitespace runs collapsed to one space, and for each char of
    the result its offset in the original text."""
    out, where = [], []
    prev_space = True
    for i, ch in enumerate(text.replace("’", "'")):
        if ch.isspace():
            if not prev_space:
                out.append(" ")
                where.append(i)
            prev_space = True
            continue
        out.append(ch.lower())
        where.append(i)
        prev_space = False
    if out and out[-1] == " ":
        out.pop()
        where.pop()
    return "".join(out), where


def validate_quoted_units(answer: str, quotes: Sequence[str], unit_id: str = "?") -> list[Span]:
    """Spans of `answer` for units an LLM quoted from it, in order of the quotes.

    Whitespace and case are normalised for the match and surrounding quote marks and
    punctuation ignored; a quote found nowhere in the answer raises :class:`QuoteError`
    naming the unit and the quote. A quote that occurs more than once takes the first
    occurrence after the previous quote's start (units come in answer order)."""
    folded, where = _folded(answer)
    spans, cursor = [], 0
    for number, quote in enumerate(quotes):
        if not isinstance(quote, str):
            raise QuoteError(f"unit {unit_id}: quote {number} is {type(quote).__name__}, not text")
        needle, _ = _folded(quote.strip(" \t\r\n\"'“”‘’.,;:!?"))
        if not needle:
            raise QuoteError(f"unit {unit_id}: quote {number} is empty")
        at = folded.find(needle, cursor)
        if at < 0:
            at = folded.find(needle)
        if at < 0:
            raise QuoteError(f"unit {unit_id}: quote {number} {quote[:80]!r} is not a span of the answer")
        spans.append(Span(where[at], where[at + len(needle) - 1] + 1))
        cursor = at
    return spans

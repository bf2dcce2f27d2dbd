"""Opinion units read by an LLM (issue 12): inside the job's one call per interview
(miner.llm_rate, `extract=True`) the model quotes each answer's opinions with a stance; here each
quote is checked to be a span of its answer and becomes an opinion unit with its offsets.

What the model says is never trusted as text: a quote is kept only where it is found in the answer
(whitespace and case normalised, a scrubbing placeholder such as "[email]" standing for what it
replaced), and the unit's text is the answer's own span. An answer falls back to the offline
splitter (miner.opinion_job.opinion_units), counted by reason, when
  * its interview's call did not deliver a valid reply (`no_reply`: faults, an invalid reply, or
    the job's token budget, of which reading may spend READ_BUDGET_SHARE),
  * its text was cut before it was sent (`too_long`: the model did not see all of it),
  * any of its quotes is not a span of it (`not_a_span`: a paraphrase or an invented quote).
An answer the model says has no opinion (an empty list) is a no-opinion answer like those the
offline detector finds: counted in reporting.no_opinion, never themed. A quote that only rates
("4 out of 5") gives no unit, as offline.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from miner.llm import LLM
from miner.llm_rate import LLMInterviewRating, rate_with_llm
from miner.opinion_job import opinion_units, says_nothing
from miner.opinion_units import QuoteError, Span, validate_quoted_units
from miner.records import Unit
from miner.units import answer_hash

logger = logging.getLogger(__name__)

FALLBACK_REASONS = ("no_reply", "too_long", "not_a_span")
# With a job token budget, reading the interviews (the first LLM step) may spend at most this share
# of it: the themes keep the rest for their labels, which a researcher reads first. An interview
# left unread for want of budget is split and rated offline, like one whose call failed.
READ_BUDGET_SHARE = 0.5
_PLACEHOLDER = re.compile(r"\[(?:url|email|secret|iban|card|ssn|ip|phone)\]")
_QUOTE_EDGES = " \t\r\n\"'“”‘’.,;:!?…"


@dataclass(frozen=True)
class LLMReading:
    """The job's answers read by the LLM: opinion units, no-opinion answer ids, the interviews'
    ratings (for miner.understand) and counts (job counts, `llm_*`)."""

    units: list[Unit]
    empty: set[str]
    ratings: dict[str, LLMInterviewRating]
    counts: dict[str, int] = field(default_factory=dict)


def locate_quote(answer: str, quote: str) -> Span:
    """Where `quote` is in `answer`: case and whitespace normalised; a scrubbing placeholder in the
    quote matches whatever it replaced. Raises QuoteError when it is nowhere."""
    try:
        return validate_quoted_units(answer, [quote])[0]
    except QuoteError:
        if not _PLACEHOLDER.search(quote) or not re.search(r"\w", _PLACEHOLDER.sub("", quote)):
            raise  # a quote of placeholders only would match any words
    pieces = [_pattern(piece) for piece in _PLACEHOLDER.split(quote.strip(_QUOTE_EDGES))]
    # What a placeholder stands for: text with no space at the quote's edges, any text inside it.
    pattern = pieces[0]
    for n, piece in enumerate(pieces[1:], start=1):
        edge = (n == 1 and not pieces[0]) or (n == len(pieces) - 1 and not piece)
        pattern += (r"\S+" if edge else r"\S(?:.*?\S)?") + piece
    found = re.search(pattern, answer, re.IGNORECASE | re.DOTALL)
    if found is None or found.end() == found.start():
        raise QuoteError(f"quote {quote[:80]!r} is not a span of the answer")
    return Span(found.start(), found.end())


def _pattern(text: str) -> str:
    """A piece of a quote as a regular expression: its words, any whitespace between and around them."""
    core = r"\s+".join(map(re.escape, text.split()))
    if not core:
        return r"\s+" if text else ""
    return (r"\s+" if text[0].isspace() else "") + core + (r"\s+" if text[-1].isspace() else "")


def quoted_units(answer: Unit, quotes: Sequence[tuple[str, str]]) -> list[Unit]:
    """The opinion units of one answer from its (quote, stance) pairs, in answer order; raises
    QuoteError when a quote is not a span of the answer. Units that only rate are left out, and a
    span quoted twice gives one unit. Ids: `<answer unit id>:q<start>-<end>` (offline units are
    `<answer unit id>:<k>`), so a unit's id always names the same text."""
    spans: dict[Span, str] = {}
    for quote, stance in quotes:
        span = locate_quote(answer.answer, quote)
        if not says_nothing(answer.answer[span.start:span.end]):
            spans.setdefault(span, stance)
    units = []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        text = answer.answer[span.start:span.end]
        units.append(replace(answer, unit_id=f"{answer.unit_id}:q{span.start}-{span.end}", answer=text,
                             answer_hash=answer_hash(text), answer_unit_id=answer.unit_id,
                             span_start=span.start, span_end=span.end, full_answer=answer.answer,
                             stance=spans[span], source="llm"))
    return units


def read_with_llm(answers: Sequence[Unit], llm: LLM, scrub: bool = True) -> LLMReading:
    """Opinion units of the job's answers from one LLM call per interview; the offline splitter
    for each answer whose reading does not hold (module docstring)."""
    ratings = rate_with_llm(answers, llm, scrub=scrub, extract=True)
    units: list[Unit] = []
    empty: set[str] = set()
    counts: Counter[str] = Counter({key: 0 for key in ("llm_read_answers", "llm_units", "llm_no_opinion",
                                                       *(f"llm_fallback_{r}" for r in FALLBACK_REASONS))})
    offline: list[Unit] = []
    for answer in answers:
        reading = ratings.get(answer.interview_id)
        if reading is None or reading.opinions is None or answer.unit_id not in reading.opinions:
            counts["llm_fallback_no_reply"] += 1
            offline.append(answer)
            continue
        if answer.unit_id in reading.truncated:
            counts["llm_fallback_too_long"] += 1
            offline.append(answer)
            continue
        try:
            found = quoted_units(answer, reading.opinions[answer.unit_id])
        except QuoteError as exc:
            counts["llm_fallback_not_a_span"] += 1
            logger.info("llm_units: answer %s read offline: %s", answer.unit_id, exc)
            offline.append(answer)
            continue
        counts["llm_read_answers"] += 1
        counts["llm_units"] += len(found)
        if not found:
            empty.add(answer.unit_id)
            counts["llm_no_opinion"] += 1
        units.extend(found)
    split, split_empty = opinion_units(offline)
    units.extend(split)
    empty |= split_empty
    counts["llm_fallback_answers"] = len(offline)
    logger.info("llm_units: %d answers → %d units by the LLM, %d answers split offline (%s)",
                counts["llm_read_answers"], counts["llm_units"], len(offline),
                {r: counts[f"llm_fallback_{r}"] for r in FALLBACK_REASONS})
    order = {a.unit_id: n for n, a in enumerate(answers)}
    units.sort(key=lambda u: (order[u.answer_unit_id], u.span_start or 0))
    return LLMReading(units, empty, ratings, dict(counts))

"""Quality stage: a verdict per interview, with reasons, so low-effort interviews can be left out
of statistics (they are kept, and the verdicts are a table).

Reasons (each a rule over the interview's own record and answers):
- short_chat: fewer than `min_chat_messages` chat messages — only where the study logs chats at
  all (a survey such as HALIE has none, which says nothing about any one interview);
- empty_answers: at least half the answers are empty or shrugs ("idk", "ok", "asdf");
- copy_pasted: at least half the answers (and two or more) repeat another answer of the same
  interview or are pasted whole from the chat or the question;
- unrelated_answers: at least half the substantive answers (and two or more) are unrelated both
  to their question and to opinions about an assistant: cosine below `min_relatedness` to the
  question and to the centroid of the praise/complaint anchor phrasings (on the sample study
  70% of off-topic answers fall below 0.2, 1.5% of on-theme ones; on HALIE 3%);
- llm_judge: the LLM, in its one call per interview, judged the answers low effort.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from miner.protocols import Embedder
from miner.ratings import asks_for_rating, parse_rating
from miner.records import Interview, QualityVerdict, Unit

logger = logging.getLogger(__name__)

# Whole answers that say nothing (after lower-casing and dropping punctuation).
SHRUGS = frozenset((
    "idk", "dunno", "n/a", "na", "none", "nothing", "no", "yes", "ok", "okay", "k", "kk", "fine", "good",
    "meh", "whatever", "same", "nope", "yep", "sure", "x", "xx", "test", "lol", "no comment",
    "nothing to add", "not sure", "same as above", "i don't know", "i dont know", "no idea",
    "no opinion", "nothing else", "fine i guess", "it was ok", "it was fine", "all good",
))
_KEYBOARD_RUNS = ("asdf", "qwer", "zxcv", "hjkl", "jkl;", "sdfg", "fdsa")


@dataclass(frozen=True)
class QualityOptions:
    """Thresholds of the rules; the defaults are documented in the module docstring."""

    min_chat_messages: int = 2
    flag_share: float = 0.5
    min_flagged_answers: int = 2
    min_relatedness: float = 0.2
    pasted_min_chars: int = 40


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\s'/-]", " ", text.casefold())).strip()


def is_low_effort(answer: str) -> bool:
    """Empty, a shrug, punctuation only, or keyboard mash."""
    text = _squash(answer)
    letters = re.sub(r"[^a-z]", "", text)
    if len(letters) <= 1 or text in SHRUGS:
        return True
    return len(text.split()) == 1 and (any(run in text for run in _KEYBOARD_RUNS) or not re.search(r"[aeiouy]", letters))


def _answers(interview: Interview) -> list[tuple[str, str]]:
    """(question, answer) for every user turn of the interview, empty answers included."""
    pairs, question = [], []
    for message in interview.interview:
        text = message.text.strip()
        if message.role == "user":
            pairs.append(("\n".join(question), text))
            question = []
        elif text:
            question.append(text)
    return pairs


def _copied(pairs: list[tuple[str, str]], chat: str, min_chars: int) -> int:
    """Answers that repeat another answer of the interview or are pasted from the chat or question."""
    texts = [_squash(answer) for _, answer in pairs]
    counts = Counter(t for t in texts if t)
    copied = 0
    for (question, _), text in zip(pairs, texts):
        if not text:
            continue
        if counts[text] > 1 or text == _squash(question) or (len(text) >= min_chars and text in chat):
            copied += 1
    return copied


def opinion_direction(opinion_vectors: np.ndarray) -> np.ndarray:
    """The unit centroid of phrasings of opinions about an assistant (the rating anchors)."""
    opinion = opinion_vectors.mean(axis=0)
    return opinion / (np.linalg.norm(opinion) or 1.0)


def relatedness(vector: np.ndarray, question_vector: np.ndarray, opinion: np.ndarray) -> float:
    """How related an answer (or opinion unit) is to its question or to opinions about an
    assistant: the larger cosine; below `QualityOptions.min_relatedness` it is about something else."""
    return max(float(vector @ question_vector), float(opinion @ vector))


def judge_quality(interviews: Sequence[Interview], units: Sequence[Unit], vectors: np.ndarray,
                  embedder: Embedder, opinion_vectors: np.ndarray, options: QualityOptions = QualityOptions(),
                  llm_judgements: dict[str, str] | None = None) -> list[QualityVerdict]:
    """One verdict per interview. `vectors` are the units' answer vectors; `opinion_vectors` are
    phrasings of opinions about an assistant (an answer near their centroid is on topic whatever
    the question);
    `llm_judgements` maps interviews the LLM judged low effort to its reason."""
    opinion = opinion_direction(opinion_vectors)
    logs_chats = any(interview.session for interview in interviews)
    unit_index = {u.unit_id: i for i, u in enumerate(units)}
    questions = sorted({u.question for u in units})
    question_vectors = dict(zip(questions, embedder.embed(questions))) if questions else {}
    by_interview: dict[str, list[Unit]] = {}
    for unit in units:
        by_interview.setdefault(unit.interview_id, []).append(unit)
    verdicts = []
    for interview in interviews:
        pairs = _answers(interview)
        session = interview.session
        chat = _squash(" ".join(m.text for m in session))
        low_effort = sum(is_low_effort(answer) for _, answer in pairs)
        copied = _copied(pairs, chat, options.pasted_min_chars)
        unrelated = substantive = 0
        for unit in by_interview.get(interview.interview_id, []):
            if is_low_effort(unit.answer) or parse_rating(unit.answer, bare=asks_for_rating(unit.question)) is not None:
                continue
            substantive += 1
            vector = vectors[unit_index[unit.unit_id]]
            unrelated += relatedness(vector, question_vectors[unit.question], opinion) < options.min_relatedness

        def flagged(count: int, out_of: int) -> bool:
            return count >= options.min_flagged_answers and count >= options.flag_share * out_of

        reasons = []
        if logs_chats and len(session) < options.min_chat_messages:
            reasons.append("short_chat")
        if pairs and low_effort >= options.flag_share * len(pairs):
            reasons.append("empty_answers")
        if flagged(copied, len(pairs)):
            reasons.append("copy_pasted")
        if flagged(unrelated, substantive):
            reasons.append("unrelated_answers")
        details = {"answers": len(pairs), "chat_messages": len(session), "low_effort_answers": low_effort,
                   "copied_answers": copied, "unrelated_answers": unrelated}
        if llm_judgements and interview.interview_id in llm_judgements:
            reasons.append("llm_judge")
            details["llm_reason"] = llm_judgements[interview.interview_id]
        verdicts.append(QualityVerdict(interview.interview_id, interview.session_model, bool(reasons),
                                       tuple(reasons), details))
    flagged_count = Counter(r for v in verdicts for r in v.reasons)
    logger.info("quality: %d interviews → %d low quality %s", len(verdicts),
                sum(v.low_quality for v in verdicts), dict(flagged_count))
    return verdicts

"""Units stage: split interviews into answer units (question + the user's answer)."""

from __future__ import annotations

import hashlib
import logging

from miner.records import Interview, Unit

logger = logging.getLogger(__name__)


def answer_hash(text: str) -> str:
    """Cache key of an answer's embedding."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_units(interviews: list[Interview]) -> list[Unit]:
    """One unit per non-empty user answer, paired with the interviewer turns just before it."""
    units: list[Unit] = []
    for interview in interviews:
        question_parts: list[str] = []
        answer_index = 0
        for message in interview.interview:
            text = message.text.strip()
            if message.role != "user":
                question_parts.append(text)
                continue
            if text:
                units.append(
                    Unit(
                        unit_id=f"{interview.interview_id}:{answer_index}",
                        interview_id=interview.interview_id,
                        study=interview.study,
                        session_model=interview.session_model,
                        answer_index=answer_index,
                        question="\n".join(q for q in question_parts if q),
                        answer=text,
                        answer_hash=answer_hash(text),
                    )
                )
            answer_index += 1
            question_parts = []
    logger.info("units: %d interviews → %d answer units", len(interviews), len(units))
    return units

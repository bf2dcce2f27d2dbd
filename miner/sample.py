"""Synthetic sample study: interview logs with planted per-model themes and ratings.

Used for demos and for measuring whether the pipeline recovers what was planted:
every answer carries the theme it was written from, every interview its true ratings.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import string
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import accumulate

from miner import sample_phrases as phrases

__all__ = [
    "PLANTED_SHARES",
    "PLANTED_THEMES",
    "SESSION_MODELS",
    "SampleInterview",
    "generate_sample",
    "write_jsonl",
]

SESSION_MODELS: tuple[str, ...] = ("aurora-7b", "borealis-70b", "cirrus-mini")
INTERVIEW_MODEL = "interviewer-llm"

PLANTED_THEMES: dict[str, str] = {
    "too_verbose": "too verbose / long-winded",
    "made_up_citation": "made up citations or sources",
    "great_for_code": "great for coding tasks",
    "refused_harmless": "refused harmless requests / overly cautious",
    "understood_intent": "understood what the user meant",
    "fast_and_concise": "fast and concise replies",
    "outdated_knowledge": "outdated knowledge",
    "friendly_tone": "friendly, warm tone",
}

# Each row sums to 1: the share of a model's themed answers about each theme.
PLANTED_SHARES: dict[str, dict[str, float]] = {
    "aurora-7b": {
        "too_verbose": 0.06, "made_up_citation": 0.14, "great_for_code": 0.06, "refused_harmless": 0.08,
        "understood_intent": 0.08, "fast_and_concise": 0.26, "outdated_knowledge": 0.20, "friendly_tone": 0.12,
    },
    "borealis-70b": {
        "too_verbose": 0.36, "made_up_citation": 0.04, "great_for_code": 0.20, "refused_harmless": 0.12,
        "understood_intent": 0.14, "fast_and_concise": 0.02, "outdated_knowledge": 0.04, "friendly_tone": 0.08,
    },
    "cirrus-mini": {
        "too_verbose": 0.08, "made_up_citation": 0.26, "great_for_code": 0.04, "refused_harmless": 0.20,
        "understood_intent": 0.06, "fast_and_concise": 0.14, "outdated_knowledge": 0.10, "friendly_tone": 0.12,
    },
}

# Sentiment of each theme: pushes the interview's true ratings up or down.
THEME_POLARITY: dict[str, int] = {
    "too_verbose": -1, "made_up_citation": -1, "great_for_code": 1, "refused_harmless": -1,
    "understood_intent": 1, "fast_and_concise": 1, "outdated_knowledge": -1, "friendly_tone": 1,
}
# Per-model baseline satisfaction (before the themes' pull).
BASE_SATISFACTION: dict[str, float] = {"aurora-7b": 3.4, "borealis-70b": 3.9, "cirrus-mini": 2.8}

DIMENSIONS = ("understanding", "needs", "credibility", "satisfaction", "improvements", "overall")
OFF_TOPIC_RATE = 0.05
LOW_EFFORT_RATE = 0.05
LOW_QUALITY_RATE = 0.03
TWO_CLAIM_RATE = 0.65
BARE_RATING_RATE = 0.12
ODD_RATING_FORM_RATE = 0.15
RATING_REASON_RATE = 0.5
# Share of themed answers given to each extra theme (the planted shares shrink to make room).
EXTRA_THEME_SHARE = 0.10
RESERVED_LABELS = ("off_topic", "low_effort", "rating")
STUDY_START = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class SampleInterview:
    """One generated interview log with its ground truth."""

    record: dict
    answer_themes: tuple[str, ...]
    ratings: dict[str, int]
    low_quality: bool


def _slot_names(template: str) -> tuple[str, ...]:
    return tuple(name for _, name, _, _ in string.Formatter().parse(template) if name)


# Templates parsed once, so generating 20,000 interviews stays fast.
_THEME_TEMPLATES = {
    theme: ([(t, _slot_names(t)) for t in templates], slots)
    for theme, (templates, slots) in phrases.THEMES.items()
}


def _dress(rng: random.Random, core: str) -> str:
    """Add a shared opener and ending, as people start and end answers differently."""
    opener = rng.choice(phrases.OPENERS)
    if opener and core[:1].isupper() and not core.startswith(("I ", "I'")):
        core = core[0].lower() + core[1:]
    ending = rng.choice(phrases.ENDINGS)
    said = ending.strip(" .!").lower()
    if opener and said and said in opener.lower():  # not "To be honest, ... to be honest."
        ending = "."
    text = opener + core.rstrip(".!? ") + ending
    if rng.random() < 0.15:  # some people type everything in lower case
        return text.lower()
    return text[0].upper() + text[1:]


def _claims(rng: random.Random, theme: str, count: int, extra_themes: dict[str, list[str]]) -> list[str]:
    if theme in extra_themes:  # given phrasings are claims without slots
        return [claim.strip().rstrip(".!?") for claim in rng.sample(extra_themes[theme], count)]
    templates, slots = _THEME_TEMPLATES[theme]
    return [
        template.format(**{name: rng.choice(slots[name]) for name in names})
        for template, names in rng.sample(templates, count)
    ]


def _theme_answer(rng: random.Random, theme: str, extra_themes: dict[str, list[str]]) -> str:
    pair = rng.random() < TWO_CLAIM_RATE and (theme not in extra_themes or len(extra_themes[theme]) > 1)
    if not pair:
        return _dress(rng, _claims(rng, theme, 1, extra_themes)[0])
    first, second = _claims(rng, theme, 2, extra_themes)
    connector = rng.choice(phrases.CONNECTORS)
    if connector == ". " and not second.startswith("I"):
        second = second[0].upper() + second[1:]
    elif connector != ". " and second[:1].isupper() and not second.startswith(("I ", "I'")):
        second = second[0].lower() + second[1:]
    return _dress(rng, first + connector + second)


def _off_topic_answer(rng: random.Random) -> str:
    text = rng.choice(phrases.OFF_TOPIC_LEADS) + rng.choice(phrases.OFF_TOPIC) + rng.choice((".", "", "!", " lol"))
    return text[0].upper() + text[1:]


def _rating_answer(rng: random.Random, rating: int) -> str:
    low = min(max(rating - rng.randint(0, 1), 1), 4)
    forms = phrases.RATING_ODD_FORMS if rng.random() < ODD_RATING_FORM_RATE else phrases.RATING_FORMS
    number = rng.choice(phrases.RATING_LEADS) + rng.choice(forms).format(
        r=rating, w=phrases.NUMBER_WORDS[rating], t=max(1, 2 * rating - rng.randint(0, 1)), lo=low, hi=low + 1
    )
    bare = rng.random() < BARE_RATING_RATE
    pattern = rng.choice(phrases.RATING_BARE_PATTERNS if bare else phrases.RATING_PATTERNS)
    text = pattern.format(
        num=number, sat=rng.choice(phrases.SATISFACTION_WORDS[rating]), why=rng.choice(phrases.RATING_REASONS[rating])
    )
    # A reason tacked on half the time blurs the forms into one region; without it
    # each exact form repeats often enough to become its own cluster.
    if rng.random() < RATING_REASON_RATE and "{why}" not in pattern:
        join, reason = rng.choice(phrases.REASON_JOINS), rng.choice(phrases.RATING_REASONS[rating])
        text += join + (reason[0].upper() + reason[1:] if join == ". " else reason)
    return text[0].upper() + text[1:]


def _clamp_rating(x: float) -> int:
    return min(5, max(1, int(x + 0.5)))


def _ratings(rng: random.Random, model: str, labels: dict[str, str]) -> dict[str, int]:
    """True ratings that agree with the sentiment of what the user said."""
    base = BASE_SATISFACTION[model]
    polarities = [THEME_POLARITY[label] for label in labels.values() if label in THEME_POLARITY]
    mood = sum(polarities) / len(polarities) if polarities else 0.0
    ratings = {
        dim: _clamp_rating(base + THEME_POLARITY.get(labels.get(dim, ""), 0) + 0.3 * mood + rng.gauss(0, 0.6))
        for dim in ("understanding", "needs", "credibility")
    }
    ratings["satisfaction"] = _clamp_rating(base + 0.8 * mood + rng.gauss(0, 0.5))
    own = base + THEME_POLARITY.get(labels.get("overall", ""), 0)
    ratings["overall"] = _clamp_rating((ratings["satisfaction"] + own) / 2 + rng.gauss(0, 0.4))
    return ratings


def _content(rng: random.Random, text: str) -> str | list[dict[str, str]]:
    """Message content; some chat UIs log it as a list of text parts."""
    if rng.random() >= 0.12:
        return text
    head, sep, tail = text.partition(". ")
    if not sep:
        return [{"text": text}]
    return [{"text": head + "."}, {"text": tail}]


def _session(rng: random.Random, labels: list[str], turns: int) -> list[dict]:
    """A short chat on a task that fits the themes the user later talks about."""
    fitting = [phrases.THEME_TASKS[label] for label in labels if label in phrases.THEME_TASKS]
    task = rng.choice(fitting) if fitting and rng.random() < 0.8 else rng.choice(list(phrases.TASKS))
    exchanges = [rng.choice(phrases.TASKS[task]["openings"])]
    follow_ups = phrases.TASKS[task]["follow_ups"]
    exchanges += [follow_ups[i] for i in sorted(rng.sample(range(len(follow_ups)), (turns - 1) // 2))]
    texts = [text for exchange in exchanges for text in exchange]
    roles = ("user", "assistant")
    return [{"role": roles[i % 2], "content": _content(rng, t)} for i, t in enumerate(texts[:turns])]


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _low_quality_answers(rng: random.Random) -> list[str]:
    if rng.random() < 0.5:
        return [rng.choice(phrases.COPY_PASTE)] * len(DIMENSIONS)
    answers = [rng.choice(phrases.LOW_EFFORT) for _ in DIMENSIONS]
    # Ingest rejects an interview whose answers are all empty; keep one word so it gets stored and flagged.
    if not any(a.strip() for a in answers):
        answers[rng.randrange(len(answers))] = rng.choice(phrases.COPY_PASTE)
    return answers


def _labels(rng: random.Random, cum_weights: list[float], theme_keys: list[str]) -> dict[str, str]:
    """What each answer of a normal interview is about, per dimension."""
    labels = {}
    for dim in DIMENSIONS:
        draw = rng.random()
        if dim == "satisfaction":
            labels[dim] = "rating"
        elif draw < OFF_TOPIC_RATE:
            labels[dim] = "off_topic"
        elif draw < OFF_TOPIC_RATE + LOW_EFFORT_RATE:
            labels[dim] = "low_effort"
        else:
            labels[dim] = rng.choices(theme_keys, cum_weights=cum_weights)[0]
    return labels


def _answer(rng: random.Random, label: str, ratings: dict[str, int], extra_themes: dict[str, list[str]]) -> str:
    if label == "rating":
        return _rating_answer(rng, ratings["satisfaction"])
    if label == "off_topic":
        return _off_topic_answer(rng)
    if label == "low_effort":
        return rng.choice(phrases.LOW_EFFORT)
    return _theme_answer(rng, label, extra_themes)


def _interview(rng: random.Random, model: str, cum_weights: list[float], theme_keys: list[str],
               extra_themes: dict[str, list[str]], id_salt: int) -> SampleInterview:
    interview_id = str(uuid.UUID(int=rng.getrandbits(128) ^ id_salt, version=4))
    low_quality = rng.random() < LOW_QUALITY_RATE
    if low_quality:
        labels = dict.fromkeys(DIMENSIONS, "low_effort")
        ratings = _ratings(rng, model, {})
        answers = _low_quality_answers(rng)
    else:
        labels = _labels(rng, cum_weights, theme_keys)
        ratings = _ratings(rng, model, labels)
        answers = [_answer(rng, label, ratings, extra_themes) for label in labels.values()]

    session = _session(rng, list(labels.values()), 1 if low_quality else rng.randint(2, 8))
    session_start = STUDY_START + timedelta(seconds=rng.uniform(0, 28 * 24 * 3600))
    # Users take a while to type; models answer in seconds.
    chat_seconds = sum(rng.uniform(20, 90) if m["role"] == "user" else rng.uniform(3, 15) for m in session)
    session_end = session_start + timedelta(seconds=chat_seconds)
    interview_start = session_end + timedelta(seconds=rng.uniform(5, 120))
    interview: list[dict] = []
    for i, (dim, answer) in enumerate(zip(DIMENSIONS, answers)):
        ack = rng.choice(phrases.ACKNOWLEDGEMENTS) if i else ""
        interview.append({"role": "assistant", "content": ack + rng.choice(phrases.QUESTIONS[dim])})
        interview.append({"role": "user", "content": answer})
    answer_seconds = sum(rng.uniform(8, 40) + 0.25 * len(a) for a in answers)
    record = {
        "id": interview_id,
        "sessionModel": model,
        "session": session,
        "sessionStart": _iso(session_start),
        "sessionEnd": _iso(session_end),
        "interviewModel": INTERVIEW_MODEL,
        "interview": interview,
        "interviewStart": _iso(interview_start),
        "interviewEnd": _iso(interview_start + timedelta(seconds=answer_seconds)),
    }
    return SampleInterview(record, tuple(labels.values()), ratings, low_quality)


def _check_extra_themes(extra_themes: dict[str, list[str]]) -> None:
    for key, phrasings in extra_themes.items():
        if key in PLANTED_THEMES or key in RESERVED_LABELS:
            raise ValueError(f"extra theme {key!r} clashes with a planted theme or label")
        if not phrasings or not all(isinstance(p, str) and p.strip() for p in phrasings):
            raise ValueError(f"extra theme {key!r} needs at least one non-empty phrasing")


def generate_sample(interviews: int = 300, seed: int = 0,
                    extra_themes: dict[str, list[str]] | None = None) -> list[SampleInterview]:
    """Generate a deterministic synthetic study of ``interviews`` interviews.

    ``extra_themes`` (theme key -> phrasings) are planted on top of the built-in themes,
    each taking EXTRA_THEME_SHARE of every model's themed answers.
    """
    extra_themes = dict(extra_themes or {})
    _check_extra_themes(extra_themes)
    rng = random.Random(seed)
    # Different extra themes give different ids, so two batches never share an id by accident.
    id_salt = int.from_bytes(hashlib.sha256("\n".join(extra_themes).encode()).digest()[:16]) if extra_themes else 0
    extra_total = min(EXTRA_THEME_SHARE * len(extra_themes), 0.5)
    theme_keys = list(PLANTED_THEMES) + list(extra_themes)
    extra_weights = [extra_total / len(extra_themes)] * len(extra_themes) if extra_themes else []
    cum_weights = {
        model: list(accumulate([PLANTED_SHARES[model][k] * (1 - extra_total) for k in PLANTED_THEMES] + extra_weights))
        for model in SESSION_MODELS
    }
    samples = []
    for _ in range(interviews):
        model = rng.choice(SESSION_MODELS)
        samples.append(_interview(rng, model, cum_weights[model], theme_keys, extra_themes, id_salt))
    return samples


def write_jsonl(samples: list[SampleInterview], path: str | os.PathLike) -> int:
    """Write the samples' interview records, one JSON object per line; return the count."""
    with open(path, "w", encoding="utf-8") as out:
        for sample in samples:
            out.write(json.dumps(sample.record, ensure_ascii=False) + "\n")
    return len(samples)

"""Privacy scrubbing: identifiers in answer text become placeholders before the text leaves for an LLM.

Cheap regular expressions, tuned to over-scrub rather than leak: an e-mail address, a phone
number, a URL carrying credentials or tokens, an API key, an IP address, a card number, an
IBAN or a US social security number is replaced by a bracketed placeholder such as "[email]".
A plain URL without query, credentials or token-like path stays: it is often the point of the
answer ("it linked to docs.python.org").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

_URL = re.compile(r"""\b(?:https?://|www\.)[^\s<>"'`]+""", re.IGNORECASE)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
# Vendor key prefixes (OpenAI, GitHub, Slack, AWS, Stripe...) or any long mixed letter+digit run.
_SECRET = re.compile(
    r"\b(?:(?:sk|pk|rk|ghp|gho|ghs|github_pat|xox[abprs]|AKIA|ASIA|AIza)[-_A-Za-z0-9]{12,}"
    r"|(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,})\b"
)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b")
_CARD = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?![\w.])")
_SSN = re.compile(r"\b\d{3}-\d{2}-\d{4}\b")
_IPV4 = re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(?:25[0-5]|2[0-4]\d|1?\d?\d)\b")
_PHONE = re.compile(r"(?<![\w+])(?:\+|00)?\d[\d ().\-/]{6,}\d(?![\w])")
_DATE_LIKE = re.compile(r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}$|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$")
_TOKEN_QUERY = re.compile(r"[?#&;]|%[0-9a-f]{2}", re.IGNORECASE)
_TOKEN_SEGMENT = re.compile(r"(?=[^/]*\d)(?=[^/]*[A-Za-z])[A-Za-z0-9_\-]{20,}")
MIN_PHONE_DIGITS = 8
MAX_PHONE_DIGITS = 15


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _url(match: re.Match[str]) -> tuple[str, str] | None:
    url = match.group(0).rstrip(".,;:!?)]}")
    rest = url.split("://", 1)[-1]
    host, _, path = rest.partition("/")
    if "@" in host or _TOKEN_QUERY.search(path) or _TOKEN_SEGMENT.search(path):
        return url, "[url]"
    return None


def _phone(match: re.Match[str]) -> tuple[str, str] | None:
    text = match.group(0)
    digits = sum(c.isdigit() for c in text)
    if not MIN_PHONE_DIGITS <= digits <= MAX_PHONE_DIGITS or _DATE_LIKE.match(text):
        return None
    return text, "[phone]"


def _card(match: re.Match[str]) -> tuple[str, str] | None:
    digits = re.sub(r"\D", "", match.group(0))
    return (match.group(0), "[card]") if _luhn_ok(digits) else None


def _always(placeholder: str):
    return lambda match: (match.group(0), placeholder)


# Order matters: URLs may hold e-mail addresses and tokens; cards and IBANs look like phone numbers.
_RULES = (
    ("url", _URL, _url),
    ("email", _EMAIL, _always("[email]")),
    ("secret", _SECRET, _always("[secret]")),
    ("iban", _IBAN, _always("[iban]")),
    ("card", _CARD, _card),
    ("ssn", _SSN, _always("[ssn]")),
    ("ip", _IPV4, _always("[ip]")),
    ("phone", _PHONE, _phone),
)


def scrub_text(text: str, found: Counter[str] | None = None) -> str:
    """The text with identifiers replaced by placeholders; `found` (if given) counts them by kind."""
    for kind, pattern, decide in _RULES:
        pieces: list[str] = []
        last = 0
        for match in pattern.finditer(text):
            verdict = decide(match)
            if verdict is None:
                continue
            original, placeholder = verdict
            pieces.append(text[last:match.start()])
            pieces.append(placeholder)
            last = match.start() + len(original)
            if found is not None:
                found[kind] += 1
        if pieces:
            text = "".join(pieces) + text[last:]
    return text


def scrubbed_units(units: Iterable) -> list[tuple[str, str, str]]:
    """(unit_id, scrubbed question, scrubbed answer) of each unit, for ``scrubbed_units`` rows. A
    text repeated within the call is scrubbed once: a study's few questions recur in every
    interview, and an opinion unit that is its whole answer repeats the answer."""
    memo: dict[str, str] = {}

    def scrub(text: str) -> str:
        if (done := memo.get(text)) is None:
            done = memo[text] = scrub_text(text)
        return done

    return [(u.unit_id, scrub(u.question), scrub(u.answer)) for u in units]

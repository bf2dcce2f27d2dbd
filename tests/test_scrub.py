"""Privacy scrubbing: identifiers become placeholders; ordinary numbers, dates and plain links stay."""

from __future__ import annotations

from collections import Counter

import pytest

from miner.scrub import scrub_text


@pytest.mark.parametrize(("text", "expected", "kind"), [
    ("write to jane.doe+bills@example.co.uk please", "write to [email] please", "email"),
    ("call +1 (555) 201-7788 after six", "call [phone] after six", "phone"),
    ("ring 020 7946 0958 or 07700 900123", "ring [phone] or [phone]", "phone"),
    ("reset via https://app.example.com/reset?token=9f8e7d6c5b4a now", "reset via [url] now", "url"),
    ("see https://bob:hunter2@files.example.com/x.", "see [url].", "url"),
    ("shared https://chat.example.com/share/6f1c2b9e4d7a48a1b3c5d2e9f0a1b2c3", "shared [url]", "url"),
    ("my key sk-proj-Ab12Cd34Ef56Gh78Ij90 leaked", "my key [secret] leaked", "secret"),
    ("token 3f6c1e0b9a8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", "token [secret]", "secret"),
    ("from 192.168.10.24 at home", "from [ip] at home", "ip"),
    ("card 4111 1111 1111 1111 was charged", "card [card] was charged", "card"),
    ("IBAN DE89 3704 0044 0532 0130 00 ok", "IBAN [iban] ok", "iban"),
    ("ssn 123-45-6789", "ssn [ssn]", "ssn"),
])
def test_identifiers_become_placeholders(text, expected, kind):
    found = Counter()
    assert scrub_text(text, found) == expected
    assert found[kind] >= 1


@pytest.mark.parametrize("text", [
    "I'd rate it 4/5, maybe 8 out of 10.",
    "On 2025-03-03 it took 30 minutes and 1200 tokens.",
    "Python 3.11.4 docs at https://docs.python.org/3/library/re.html helped.",
    "It cost $1,299 and 12 345 users.",
    "Ordinary sentence about a verbose assistant.",
])
def test_ordinary_text_is_left_alone(text):
    found = Counter()
    assert scrub_text(text, found) == text
    assert not found


def test_card_like_number_failing_luhn_is_not_a_card():
    assert "[card]" not in scrub_text("order 1234 5678 9012 3456 arrived")

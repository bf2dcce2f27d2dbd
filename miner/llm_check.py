"""`miner llm check`: what an endpoint takes. One small labelling request in each request mode
(miner/llm_endpoint.py), each timed and validated like a real one; the best mode that gave a valid
reply is what the LLM layer should use."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from miner.llm_endpoint import MODES, completion_content, error_text, parse_reply, response_format, shape_request

SAMPLE_ANSWERS = [
    "It kept forgetting what I said two messages earlier, so I had to repeat myself.",
    "The assistant lost track of the context in longer chats.",
    "Halfway through it forgot the constraints I gave at the start.",
]


@dataclass(frozen=True)
class ModeCheck:
    """One mode tried: did the server take it, was the reply valid, how long it took."""

    mode: str
    accepted: bool
    valid: bool
    seconds: float
    content: str | None = None
    error: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    setting: str | None = None  # the MINER_LLM_* setting a refusal points at (wrong URL, key or model)


def sample_request(model: str, max_tokens: int) -> tuple[dict[str, Any], Any]:
    """A label request for a three-answer theme, in json_schema form, and its reply schema."""
    from miner.llm_label import LABEL_PROMPT, ThemeLabelReply

    data = {"theme_answers": [{"id": f"a{n}", "text": t} for n, t in enumerate(SAMPLE_ANSWERS, 1)],
            "answers_from_other_themes": []}
    body = {"model": model, "temperature": 0.0, "max_tokens": max_tokens,
            "messages": [{"role": "system", "content": LABEL_PROMPT},
                         {"role": "user", "content": json.dumps(data, indent=1)}],
            "response_format": response_format(ThemeLabelReply)}
    return body, ThemeLabelReply


def check_endpoint(client: Any, model: str, max_tokens: int = 300) -> list[ModeCheck]:
    """Each mode tried once with the sample request, best first."""
    body, schema = sample_request(model, max_tokens)
    checks = []
    for mode in MODES:
        started = time.perf_counter()
        try:
            completion = client.chat.completions.create(**shape_request(body, schema, mode))
            content = completion_content(completion)
        except Exception as exc:  # noqa: BLE001 — a refusal is what this command reports
            checks.append(ModeCheck(mode, False, False, time.perf_counter() - started, error=error_text(exc)[:500],
                                    setting=setting_at_fault(exc)))
            continue
        seconds = time.perf_counter() - started
        usage = getattr(completion, "usage", None)
        tokens = (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)
        if content is None:
            checks.append(ModeCheck(mode, True, False, seconds, error="the reply had no message content"))
            continue
        reply, error = parse_reply(content, schema)
        checks.append(ModeCheck(mode, True, reply is not None, seconds, content, error, *tokens))
    return checks


def best_mode(checks: list[ModeCheck]) -> str | None:
    """The first mode that gave a valid reply; else the first the server accepted."""
    for wanted in (lambda c: c.valid, lambda c: c.accepted):
        for check in checks:
            if wanted(check):
                return check.mode
    return None


def setting_at_fault(exc: BaseException) -> str | None:
    """Which setting an error points at: the URL when nothing answers there, the key on 401/403, the
    model on a 404 that names it (OpenAI, vLLM, Ollama say "model ... not found"), else the URL."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "MINER_LLM_TIMEOUT"
    if isinstance(exc, openai.APIConnectionError):
        return "MINER_LLM_BASE_URL"
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return "MINER_LLM_API_KEY"
    if status == 404:
        return "MINER_LLM_MODEL" if "model" in error_text(exc).lower() else "MINER_LLM_BASE_URL"
    return None


def refused_setting(checks: list[ModeCheck]) -> str | None:
    """The setting to fix when every mode was refused for the same reason (not a matter of request mode)."""
    settings = {check.setting for check in checks if not check.accepted}
    if any(check.accepted for check in checks) or len(settings) != 1:
        return None
    return settings.pop()

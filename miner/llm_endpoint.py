"""What differs between OpenAI-compatible endpoints, kept apart from the LLM layer (miner/llm.py):
the request shapes for structured output, telling a rejected shape from a transient fault, and
finding the JSON in replies that come wrapped (markdown fences, a leading <think> block).

Request modes, best first: `json_schema` (response_format with the schema: OpenAI, vLLM, Ollama,
llama.cpp's server), `json_object` (response_format {"type": "json_object", "schema": ...}, as
llama-cpp-python takes it, with the schema in the prompt too) and `prompt` (no response_format,
the schema in the prompt only). The LLM layer starts at the mode remembered for the endpoint
(base URL + model) and steps down when a server rejects the request's shape.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

MODES = ("json_schema", "json_object", "prompt")
SCHEMA_NOTE = ("Reply with only one JSON object, with no markdown and no other text, that follows "
               "this JSON schema:\n{schema}")

# Statuses worth another try: request timeout, conflict, too early, rate limit (and server errors).
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})
# Client errors that say nothing about the request's shape: auth, unknown model or route, size.
NOT_SHAPE_STATUSES = frozenset({401, 402, 403, 404, 413}) | TRANSIENT_STATUSES

_THINK = re.compile(r"^\s*<(think|thinking|reasoning)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_OPEN_THINK = re.compile(r"^\s*<(think|thinking|reasoning)>", re.IGNORECASE)
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\n?(.*?)```", re.DOTALL)


class EndpointErrorReply(Exception):
    """The endpoint answered HTTP 200 with an error document instead of a completion."""


def response_format(schema: type[BaseModel]) -> dict[str, Any]:
    """The `response_format` asking for a reply that follows the schema."""
    return {"type": "json_schema",
            "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True}}


def normalise_base_url(url: str) -> str:
    """One spelling per server: scheme and host in lower case, no default port, no credentials, no
    trailing slash. The path keeps its case (servers may route on it)."""
    parts = urllib.parse.urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "")
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    try:
        port = parts.port
    except ValueError:  # not a number: leave the URL as written, less its trailing slashes
        return url.strip().rstrip("/")
    if port is not None and port != {"http": 80, "https": 443}.get(scheme):
        host = f"{host}:{port}"
    # Credentials in the URL name no other server, and are not to be stored with the replies.
    return urllib.parse.urlunsplit((scheme, host, parts.path.rstrip("/"), parts.query, ""))


def endpoint_url(client: Any) -> str:
    """The client's base URL, normalised: with the model, what names an endpoint (its request mode,
    its cached replies)."""
    return normalise_base_url(str(getattr(client, "base_url", "") or ""))


def next_mode(mode: str) -> str | None:
    """The mode to try after `mode` was rejected, or None after the last."""
    position = MODES.index(mode)
    return MODES[position + 1] if position + 1 < len(MODES) else None


def shape_request(body: dict[str, Any], schema: type[BaseModel], mode: str) -> dict[str, Any]:
    """The request as sent in `mode`, from its json_schema form (which the cache key is made of)."""
    if mode == "json_schema":
        return body
    schema_json = schema.model_json_schema()
    note = SCHEMA_NOTE.format(schema=json.dumps(schema_json, ensure_ascii=False, separators=(",", ":")))
    messages = [dict(m) for m in body["messages"]]
    system = next((m for m in messages if m["role"] == "system"), None)
    if system is None:
        messages.insert(0, {"role": "system", "content": note})
    else:
        system["content"] = f"{system['content']}\n{note}"
    shaped = {key: value for key, value in body.items() if key != "response_format"}
    shaped["messages"] = messages
    if mode == "json_object":
        shaped["response_format"] = {"type": "json_object", "schema": schema_json}
    return shaped


def error_text(exc: BaseException) -> str:
    """What the server said, as text: the error body when there is one, else the exception."""
    response = getattr(exc, "response", None)
    try:
        body = response.text if response is not None else ""
    except Exception:  # noqa: BLE001 — a streamed or closed body has no text; the message will do
        body = ""
    return f"{exc} {body}".strip()


def shape_rejected(exc: BaseException) -> bool:
    """Whether the server refused the request's shape (so another mode may work and a retry won't):
    a 4xx other than auth / unknown model / rate limit, or an error that names response_format."""
    import openai

    if isinstance(exc, EndpointErrorReply):
        return "response_format" in str(exc)
    if not isinstance(exc, openai.APIStatusError):
        return False
    if 400 <= exc.status_code < 500:
        return exc.status_code not in NOT_SHAPE_STATUSES
    return "response_format" in error_text(exc)


def transient(exc: BaseException) -> bool:
    """Whether another try of the same request may succeed: connection faults, timeouts, 429, 5xx,
    a 200 carrying an error, but never a rejection of the request's shape."""
    import openai

    if shape_rejected(exc):
        return False
    if isinstance(exc, (openai.APIConnectionError, EndpointErrorReply)):  # includes timeouts and resets
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in TRANSIENT_STATUSES or exc.status_code >= 500
    return False


def completion_content(completion: Any) -> str | None:
    """The first choice's message content; raises EndpointErrorReply for a 200 with an error body."""
    choices = getattr(completion, "choices", None)
    if not choices:
        extra = getattr(completion, "model_extra", None) or {}
        error = extra.get("error") or extra.get("detail") or extra.get("message")
        if error is not None:
            message = error.get("message", error) if isinstance(error, dict) else error
            raise EndpointErrorReply(f"HTTP 200 with an error: {str(message)[:500]}")
        return None
    message = choices[0].message
    return message.content if message is not None else None


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if it did."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    if (millis := headers.get("retry-after-ms")) is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        moment = email.utils.parsedate_to_datetime(value) if value else None
        return None if moment is None else max(moment.timestamp() - time.time(), 0.0)


def json_text(content: str) -> tuple[str | None, str | None]:
    """The JSON part of a reply: after a leading <think> block, inside a markdown fence if there is
    one. (text, None), or (None, an error to show the model)."""
    text = content
    if (think := _THINK.match(text)) is not None:
        text = text[think.end():]
    elif _OPEN_THINK.match(text):
        return None, "the reply's <think> block never ends, and no JSON follows it"
    if (fenced := _FENCE.search(text)) is not None:
        text = fenced.group(1)
    return text.strip(), None


def _decode(text: str) -> Any:
    """json.loads, or the first JSON object in text that has prose around it."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        start = text.find("{")
        if start < 0:
            raise
        try:
            return json.JSONDecoder().raw_decode(text, start)[0]
        except json.JSONDecodeError:
            raise exc from None


def parse_reply(content: str, schema: type[BaseModel],
                check: Callable[[Any], str | None] | None = None) -> tuple[Any | None, str | None]:
    """(validated reply, None) or (None, an error message short enough to show the model). The
    reply is parsed as JSON, never evaluated."""
    text, error = json_text(content)
    if text is None:
        return None, error
    try:
        data = _decode(text)
    except json.JSONDecodeError as exc:
        return None, f"the reply is not valid JSON ({exc.msg} at character {exc.pos})"
    except RecursionError:
        return None, "the reply's JSON is nested too deeply"
    try:
        reply = schema.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in exc.errors()[:5])
        return None, f"the JSON does not follow the schema: {problems}"
    error = check(reply) if check else None
    return (None, error) if error else (reply, None)

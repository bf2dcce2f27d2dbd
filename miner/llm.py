"""LLM layer: JSON requests to any OpenAI-compatible chat endpoint — cached, budgeted, retried,
bounded in concurrency, and recorded in a ledger.

The `openai` client is built at the edge (`components.llm_client_from_settings`) and passed in.
Every request asks for structured output in the best mode the endpoint takes (miner/llm_endpoint.py:
`json_schema`, else `json_object` with the schema, else the schema in the prompt), learnt once per
base URL + model and remembered by the store; the reply is parsed as JSON (fences and a leading
<think> block stripped) and validated by a pydantic model, never evaluated. A reply that does not
validate is asked again with the error shown; what still fails is reported, not raised, so the
caller can fall back. Each request ends with an outcome: ok, invalid, failed (transport errors
after retries), budget (the job's token budget would be exceeded, or its call budget is spent) or
unavailable (the endpoint failed too many times in a row).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import psycopg
from pydantic import BaseModel

from miner import db, repository, repository_endpoints
from miner.llm_endpoint import (MODES, completion_content, endpoint_url, error_text, next_mode, parse_reply,  # noqa: F401
                                response_format, retry_after, shape_rejected, shape_request, transient)
from miner.records import CachedReply, LLMCall

logger = logging.getLogger(__name__)

REPAIR_PROMPT = (
    "Your reply could not be used: {error}\n"
    "Reply again with only one JSON object that follows the JSON schema you were given."
)



class LLMConfigError(ValueError):
    """The LLM settings are inconsistent (e.g. an endpoint without a model name)."""


@dataclass(frozen=True)
class LLMOptions:
    """How requests are made; `token_budget` is the default per job (None = unlimited)."""

    model: str
    max_concurrency: int = 4
    max_retries: int = 4  # further HTTP attempts after the first, on transient errors
    backoff_initial: float = 1.0  # seconds; exponential with full jitter, capped at backoff_max
    backoff_max: float = 30.0
    retry_after_max: float = 120.0  # a Retry-After longer than this ends the retries
    repair_attempts: int = 1  # re-asks after a reply fails validation
    temperature: float = 0.0
    max_tokens: int = 800
    token_budget: int | None = None
    failure_threshold: int = 5  # consecutive failed calls before the endpoint counts as down


@dataclass(frozen=True, eq=False)
class JsonRequest:
    """One structured request: messages, the reply's schema, and an optional semantic check
    (`check(reply)` returns an error message to show the model, or None)."""

    purpose: str
    messages: tuple[dict[str, str], ...]
    schema: type[BaseModel]
    check: Callable[[Any], str | None] | None = None
    theme_id: int | None = None
    repairs: int | None = None  # re-asks after an invalid reply, at most LLMOptions.repair_attempts (None: those)


@dataclass(frozen=True)
class JsonResult:
    """The validated reply (an instance of the request's schema), or why there is none."""

    reply: Any | None
    outcome: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class LLMStore(Protocol):
    """Where the response cache and the ledger live."""

    def cached(self, keys: list[str]) -> dict[str, CachedReply]: ...

    def remember(self, key: str, base_url: str, request: dict[str, Any], reply: CachedReply,
                 valid: bool) -> None: ...

    def record(self, calls: list[LLMCall]) -> None: ...

    def endpoint_mode(self, base_url: str, model: str) -> str | None: ...

    def remember_mode(self, base_url: str, model: str, mode: str, detail: str | None) -> None: ...

    def close(self) -> None:
        """Let go of what `remember` holds open between calls; `complete_json` calls it when done."""


@dataclass
class MemoryStore:
    """Cache and ledger in memory: for notebooks and for use without a database."""

    replies: dict[str, CachedReply] = field(default_factory=dict)
    calls: list[LLMCall] = field(default_factory=list)
    modes: dict[tuple[str, str], str] = field(default_factory=dict)

    def endpoint_mode(self, base_url: str, model: str) -> str | None:
        return self.modes.get((base_url, model))

    def remember_mode(self, base_url: str, model: str, mode: str, detail: str | None) -> None:
        self.modes[(base_url, model)] = mode

    def close(self) -> None:
        pass

    def cached(self, keys: list[str]) -> dict[str, CachedReply]:
        return {key: self.replies[key] for key in keys if key in self.replies}

    def remember(self, key: str, base_url: str, request: dict[str, Any], reply: CachedReply,
                 valid: bool) -> None:
        self.replies.setdefault(key, reply)

    def record(self, calls: list[LLMCall]) -> None:
        self.calls.extend(calls)


class PostgresStore:
    """Cache and ledger in Postgres. Each reply is committed to the cache, and each call to the ledger,
    as it comes, on a connection of its own: a step that dies with its transaction open (a killed
    worker, long LLM reading inside one part) loses neither the replies it paid for (its retry finds
    them cached) nor the record of what they cost (`llm_cost`, the job's token and call budgets)."""

    def __init__(self, conn: psycopg.Connection, job_id: str | None):
        self.conn, self.job_id = conn, job_id
        self._side: psycopg.Connection | None = None

    def cached(self, keys: list[str]) -> dict[str, CachedReply]:
        return repository.load_llm_cache(self.conn, keys) if keys else {}

    def _own(self) -> psycopg.Connection:
        if self._side is None or self._side.closed:
            self._side = db.sibling(self.conn, autocommit=True)
        return self._side

    def remember(self, key: str, base_url: str, request: dict[str, Any], reply: CachedReply,
                 valid: bool) -> None:
        repository.save_llm_cache(self._own(), key, base_url, request["model"], request, reply, valid)

    def close(self) -> None:
        """Close the cache's own connection (opened again if needed)."""
        if self._side is not None:
            self._side.close()
            self._side = None

    def record(self, calls: list[LLMCall]) -> None:
        if not calls:
            return
        try:
            repository.save_llm_calls(self._own(), self.job_id, calls)
        except psycopg.errors.ForeignKeyViolation:
            # The job is not committed yet (created in the caller's open transaction): its ledger
            # rows go with that transaction.
            repository.save_llm_calls(self.conn, self.job_id, calls)

    def endpoint_mode(self, base_url: str, model: str) -> str | None:
        return repository_endpoints.load_endpoint_mode(self.conn, base_url, model)

    def remember_mode(self, base_url: str, model: str, mode: str, detail: str | None) -> None:
        repository_endpoints.save_endpoint_mode(self.conn, base_url, model, mode, detail)


class TokenBudget:
    """Tokens a job may spend. A request is sent only if what was spent, what is in flight and
    its own estimate fit; the first that does not closes the budget for the rest of the job."""

    def __init__(self, limit: int | None):
        self.limit, self.used, self.reserved, self.exhausted = limit, 0, 0, False

    def reserve(self, estimate: int) -> bool:
        if self.limit is None:
            return True
        if self.exhausted or self.used + self.reserved + estimate > self.limit:
            self.exhausted = True
            return False
        self.reserved += estimate
        return True

    def settle(self, estimate: int, spent: int) -> None:
        if self.limit is not None:
            self.reserved -= estimate
        self.used += spent


def estimate_tokens(messages: Sequence[dict[str, str]], max_tokens: int) -> int:
    """A generous upper estimate (3 characters a token, plus the whole completion allowance)."""
    return sum(len(m["content"]) for m in messages) // 3 + 8 * len(messages) + max_tokens


def request_key(request: dict[str, Any], base_url: str) -> str:
    """Cache key: hash of the endpoint's normalised base URL + model + messages + parameters (the same
    model name on another server is another endpoint)."""
    canonical = json.dumps({"base_url": base_url, "request": request}, sort_keys=True, ensure_ascii=False,
                           separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class _Sent:
    """What one request (with its retries) came to."""

    content: str | None
    outcome: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    attempts: int = 0
    latency_ms: int = 0
    cache_hit: bool = False
    error: str | None = None
    mode: str | None = None  # the request mode the endpoint answered
    recorded: bool = False  # its ledger row is written (as it came)


@dataclass(frozen=True)
class _Pending:
    index: int
    request: JsonRequest
    messages: list[dict[str, str]]
    repair: bool = False
    invalid: str | None = None  # a repair: why the reply it repairs was invalid


class LLM:
    """Structured requests over one client for one job: its cache, ledger and token budget."""

    def __init__(self, client: Any, options: LLMOptions, store: LLMStore | None = None,
                 token_budget: int | None = None, spent: int = 0, call_budget: int | None = None):
        """`spent`: tokens of `token_budget` that earlier steps of the job used already.
        `call_budget`: how many calls (re-asks included; cache hits not) this LLM may still send."""
        self.client, self.options = client, options
        self.store = store if store is not None else MemoryStore()
        self.budget = TokenBudget(token_budget)
        self.budget.used = spent
        self.call_budget, self.calls_left = call_budget, call_budget
        self.consecutive_failures = 0
        self.counts: Counter[str] = Counter()
        self.base_url = endpoint_url(client)
        # Request mode: learnt from the store on the first call, stepped down on a shape rejection.
        self.mode: str | None = None
        self.mode_detail: str | None = None
        self._remembered_mode: str | None = None
        self._mode_lock = threading.Lock()

    def complete_json(self, requests: Sequence[JsonRequest]) -> list[JsonResult]:
        """One result per request, in order; requests run concurrently up to max_concurrency."""
        if self.mode is None:
            self._remembered_mode = self.store.endpoint_mode(self.base_url, self.options.model)
            self.mode = self._remembered_mode if self._remembered_mode in MODES else MODES[0]
        try:
            return self._complete_json(requests)
        finally:
            self.store.close()

    def _complete_json(self, requests: Sequence[JsonRequest]) -> list[JsonResult]:
        results: list[JsonResult | None] = [None] * len(requests)
        pending = [_Pending(i, r, list(r.messages)) for i, r in enumerate(requests)]
        for round_number in range(self.options.repair_attempts + 1):
            if not pending:
                break
            sent_all, keys = self._run_round(pending)
            calls, repairs = [], []
            for item, sent, key in zip(pending, sent_all, keys):
                reply, outcome, error = _outcome(item.request, sent)
                if not sent.recorded:  # cache hits and calls not made; sent ones were recorded as they came
                    calls.append(self._ledger_row(item, sent, key, outcome, error))
                self._count(sent, outcome)
                allowed = self.options.repair_attempts
                if item.request.repairs is not None:
                    allowed = min(allowed, item.request.repairs)
                if outcome == "invalid" and round_number < allowed:
                    logger.info("llm: %s reply for theme %s invalid, asking again: %s",
                                item.request.purpose, item.request.theme_id, error)
                    repairs.append(_Pending(item.index, item.request, [
                        *item.messages, {"role": "assistant", "content": sent.content or ""},
                        {"role": "user", "content": REPAIR_PROMPT.format(error=error)}], repair=True,
                        invalid=error))
                elif item.invalid is not None and sent.content is None:
                    # The reply was invalid and its repair was not answered (budget, endpoint down): the
                    # request ends invalid, as it was, not with the repair's fate.
                    results[item.index] = JsonResult(None, "invalid", f"{item.invalid}; repair not answered "
                                                     f"({sent.outcome}: {sent.error})")
                else:
                    results[item.index] = JsonResult(reply, outcome, error)
            self.store.record(calls)
            pending = repairs
        return [r if r is not None else JsonResult(None, "failed", "no result") for r in results]

    def _ledger_row(self, item: _Pending, sent: _Sent, key: str, outcome: str, error: str | None) -> LLMCall:
        return LLMCall(purpose=item.request.purpose, model=self.options.model, cache_key=key,
                       cache_hit=sent.cache_hit, attempts=sent.attempts, outcome=outcome,
                       prompt_tokens=sent.prompt_tokens, completion_tokens=sent.completion_tokens,
                       latency_ms=sent.latency_ms, theme_id=item.request.theme_id, repair=item.repair,
                       error=None if error is None else error[:1000])

    def usage(self) -> dict[str, Any]:
        """Job counts: calls, HTTP requests, cache hits, billed tokens, budget state."""
        usage: dict[str, Any] = {f"llm_{name}": count for name, count in sorted(self.counts.items())}
        usage["llm_budget_exhausted"] = self.budget.exhausted
        if self.mode is not None:
            usage["llm_mode"] = self.mode  # the request mode the endpoint took (llm_endpoint.MODES)
        if self.budget.limit is not None:
            usage["llm_token_budget"] = self.budget.limit
        if self.call_budget is not None:
            usage["llm_call_budget"] = self.call_budget
            usage["llm_call_budget_spent"] = self.calls_left == 0
        return usage

    def _count(self, sent: _Sent, outcome: str) -> None:
        self.counts["calls"] += 1
        self.counts["requests"] += sent.attempts
        self.counts[outcome] += 1
        if sent.cache_hit:
            self.counts["cache_hits"] += 1
        else:
            self.counts["prompt_tokens"] += sent.prompt_tokens
            self.counts["completion_tokens"] += sent.completion_tokens

    def _request(self, request: JsonRequest, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {"model": self.options.model, "messages": messages,
                "temperature": self.options.temperature, "max_tokens": self.options.max_tokens,
                "response_format": response_format(request.schema)}

    def _run_round(self, pending: list[_Pending]) -> tuple[list[_Sent], list[str]]:
        bodies = [self._request(item.request, item.messages) for item in pending]
        keys = [request_key(body, self.base_url) for body in bodies]
        cached = self.store.cached(keys)
        sent: list[_Sent | None] = [None] * len(pending)
        in_flight: dict[Future, tuple[int, int]] = {}

        def collect(done) -> None:
            for future in done:
                position, estimate = in_flight.pop(future)
                result: _Sent = future.result()
                self.budget.settle(estimate, result.prompt_tokens + result.completion_tokens)
                item = pending[position]
                _, outcome, error = _outcome(item.request, result)
                if result.content is None:
                    self.consecutive_failures += 1
                else:
                    self.consecutive_failures = 0
                    if result.mode is not None and result.mode != self._remembered_mode:
                        self.store.remember_mode(self.base_url, self.options.model, result.mode, self.mode_detail)
                        self._remembered_mode = result.mode
                    # Cached as it arrives (paid for even if the step dies later), valid or not, marked
                    # so: a re-run of an unchanged study makes no request; `miner llm cache clear
                    # --invalid-only` drops the invalid ones.
                    body = bodies[position]
                    self.store.remember(keys[position], self.base_url,
                                        {"model": body["model"], "messages": body["messages"],
                                         "schema": item.request.schema.__name__},
                                        CachedReply(result.content, result.prompt_tokens, result.completion_tokens),
                                        valid=outcome == "ok")
                # Its cost recorded as it comes too: paid for even if the step dies later.
                self.store.record([self._ledger_row(item, result, keys[position], outcome, error)])
                sent[position] = replace(result, recorded=True)

        limit = max(self.options.max_concurrency, 1)
        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="llm") as pool:
            for position, body in enumerate(bodies):
                if (hit := cached.get(keys[position])) is not None:
                    sent[position] = _Sent(hit.content, "ok", hit.prompt_tokens, hit.completion_tokens, cache_hit=True)
                    continue
                # Decide on the next request only once a slot is free, so that the budget and the
                # failure count include everything that finished meanwhile.
                while len(in_flight) >= limit:
                    collect(wait(in_flight, return_when=FIRST_COMPLETED).done)
                if self.consecutive_failures >= self.options.failure_threshold:
                    sent[position] = _Sent(None, "unavailable", error="endpoint failed "
                                           f"{self.consecutive_failures} calls in a row; not called")
                    continue
                if self.calls_left is not None and self.calls_left <= 0:
                    sent[position] = _Sent(None, "budget", error=f"call budget {self.call_budget} spent")
                    continue
                estimate = estimate_tokens(body["messages"], self.options.max_tokens)
                if not self.budget.reserve(estimate):
                    sent[position] = _Sent(None, "budget", error=f"token budget {self.budget.limit} "
                                           f"would be exceeded ({self.budget.used} spent)")
                    continue
                if self.calls_left is not None:
                    self.calls_left -= 1
                in_flight[pool.submit(self._send, body, pending[position].request.schema)] = (position, estimate)
            while in_flight:
                collect(wait(in_flight, return_when=FIRST_COMPLETED).done)
        return [s for s in sent if s is not None], keys

    def _send(self, body: dict[str, Any], schema: type[BaseModel]) -> _Sent:
        """One request with retries on transient errors, stepping down the request modes while the
        endpoint rejects the request's shape (never retried as such); runs in a pool thread, touches
        no database."""
        from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

        backoff = wait_random_exponential(multiplier=self.options.backoff_initial, max=self.options.backoff_max)

        def wait_for(state) -> float:
            asked = retry_after(state.outcome.exception())
            return max(backoff(state), asked or 0.0)

        def retry_after_too_long(state) -> bool:
            asked = retry_after(state.outcome.exception())
            return asked is not None and asked > self.options.retry_after_max

        def log_retry(state) -> None:
            logger.warning("llm: attempt %d failed (%s); retrying in %.2fs", state.attempt_number,
                           state.outcome.exception(), state.next_action.sleep if state.next_action else 0.0)

        attempts = 0
        mode, rejected = self.mode or MODES[0], None

        def call():
            nonlocal attempts
            attempts += 1
            completion = self.client.chat.completions.create(**shape_request(body, schema, mode))
            return completion, completion_content(completion)  # a 200 carrying an error raises here

        started = time.perf_counter()
        while True:
            retrying = Retrying(retry=retry_if_exception(transient), wait=wait_for, reraise=True,
                                stop=stop_after_attempt(self.options.max_retries + 1) | retry_after_too_long,
                                before_sleep=log_retry)
            try:
                completion, content = retrying(call)
                break
            except Exception as exc:  # noqa: BLE001 — a failed call is an outcome, never a crash
                lower = next_mode(mode) if shape_rejected(exc) else None
                if lower is None:
                    return _Sent(None, "failed", attempts=attempts, latency_ms=_ms_since(started),
                                 error=f"{type(exc).__name__}: {exc}", mode=mode)
                rejected = f"{mode} rejected: {error_text(exc)[:500]}"
                mode = lower
        if rejected is not None:
            self._step_down(mode, rejected)
        usage = completion.usage
        prompt = usage.prompt_tokens if usage else estimate_tokens(body["messages"], 0)
        completion_tokens = usage.completion_tokens if usage else len(content or "") // 3
        if content is None:
            return _Sent(None, "failed", prompt, completion_tokens, attempts, _ms_since(started),
                         error="the reply had no message content", mode=mode)
        return _Sent(content, "ok", prompt, completion_tokens, attempts, _ms_since(started), mode=mode)

    def _step_down(self, lower: str, why: str) -> None:
        """Use `lower` for the rest of the job: a request just got an answer in it after the better
        modes were rejected. (Only then: a 400 for one over-long request must not cost the job
        its grammar.)"""
        with self._mode_lock:
            if MODES.index(self.mode or MODES[0]) < MODES.index(lower):
                logger.warning("llm: %s (model %s): %s; using %s from now on",
                               self.base_url, self.options.model, why[:300], lower)
                self.mode, self.mode_detail = lower, why


def _outcome(request: JsonRequest, sent: _Sent) -> tuple[Any, str, str | None]:
    """(parsed reply or None, outcome, error) of what a request came to."""
    if sent.content is None:
        return None, sent.outcome, sent.error
    reply, error = parse_reply(sent.content, request.schema, request.check)
    return reply, "ok" if reply is not None else "invalid", error


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

"""The LLM layer against a local OpenAI-protocol server: structured requests, validation and repair,
the Postgres response cache, retries on 429 / 5xx / timeouts / resets, the token budget, bounded
concurrency, and the ledger. No mocked client: a real `openai.OpenAI` talks HTTP to the server."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import openai
import psycopg
import pytest
from pydantic import BaseModel, ConfigDict

from miner import repository, repository_jobs
from miner.llm import LLM, JsonRequest, LLMOptions, MemoryStore, PostgresStore, parse_reply
from miner.llm_endpoint import normalise_base_url
from openai_server import Fault, OpenAIServer, request_data

FAST = LLMOptions(model="test-model", max_concurrency=2, max_retries=3, backoff_initial=0.01, backoff_max=0.05,
                  max_tokens=100)


class Verdict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str
    score: int


def verdict_reply(body: dict) -> dict:
    text = request_data(body)["text"]
    return {"label": text.upper(), "score": len(text)}


def ask(text: str, theme_id: int | None = None) -> JsonRequest:
    return JsonRequest("label", ({"role": "system", "content": "Judge the text."},
                                 {"role": "user", "content": json.dumps({"text": text})}), Verdict, theme_id=theme_id)


@pytest.fixture
def server():
    with OpenAIServer(verdict_reply) as running:
        yield running


def client(server: OpenAIServer, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="test", timeout=timeout, max_retries=0)


def make_llm(server, options: LLMOptions = FAST, store=None, budget=None, timeout: float = 5.0) -> LLM:
    return LLM(client(server, timeout), options, store or MemoryStore(), token_budget=budget)


def test_request_asks_for_json_schema_and_reply_is_validated(server):
    [result] = make_llm(server).complete_json([ask("hello")])
    assert result.ok and result.reply == Verdict(label="HELLO", score=5)
    body = server.requests[0]
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == Verdict.model_json_schema()
    assert body["model"] == "test-model" and body["temperature"] == 0.0


def test_identical_request_is_answered_from_the_postgres_cache_without_http(server, conn):
    job_id = repository_jobs.create_job(conn, "llm-cache-study")
    first = make_llm(server, store=PostgresStore(conn, job_id)).complete_json([ask("cache me"), ask("me too")])
    assert server.request_count == 2
    second_llm = make_llm(server, store=PostgresStore(conn, job_id))
    second = second_llm.complete_json([ask("cache me"), ask("me too")])
    assert server.request_count == 2  # no HTTP at all
    assert [r.reply for r in second] == [r.reply for r in first]
    assert second_llm.usage()["llm_cache_hits"] == 2 and second_llm.usage().get("llm_requests", 0) == 0
    [cost] = repository.llm_cost(conn, job_id)
    assert (cost["calls"], cost["requests"], cost["cache_hits"]) == (4, 2, 2)
    assert cost["billed_tokens"] == cost["cached_tokens"] > 0


def test_replies_paid_for_in_a_transaction_that_dies_stay_cached(server, conn):
    # A step reads with the LLM inside its open transaction (the units step: a part of up to 5,000
    # interviews); a worker killed there rolls the transaction back, and its retry must not pay again.
    job_id = repository_jobs.create_job(conn, "llm-cache-rollback")
    conn.commit()
    first_llm = make_llm(server, store=PostgresStore(conn, job_id))
    first = first_llm.complete_json([ask("paid once"), ask("paid twice?")])
    assert server.request_count == 2 and all(r.ok for r in first)
    conn.rollback()  # the step's transaction dies with its worker: the replies and their cost stay
    [paid] = repository.llm_cost(conn, job_id)
    assert (paid["calls"], paid["requests"], paid["cache_hits"], paid["ok"]) == (2, 2, 0, 2)
    assert paid["billed_tokens"] == sum(first_llm.counts[k] for k in ("prompt_tokens", "completion_tokens")) > 0
    retry = make_llm(server, store=PostgresStore(conn, job_id))
    again = retry.complete_json([ask("paid once"), ask("paid twice?")])
    assert server.request_count == 2  # answered from the cache
    assert [r.reply for r in again] == [r.reply for r in first]
    assert retry.usage()["llm_cache_hits"] == 2
    [cost] = repository.llm_cost(conn, job_id)  # billed once, in the attempt that died
    assert (cost["calls"], cost["cache_hits"], cost["billed_tokens"]) == (4, 2, paid["billed_tokens"])


def test_each_reply_is_committed_to_the_cache_as_it_arrives(conn, database_url):
    # Not at the end of the round: a step killed while later requests are in flight keeps what came.
    job_id = repository_jobs.create_job(conn, "llm-cache-arrival")
    conn.commit()
    seen_cached = []

    def reply(body: dict) -> dict:
        if request_data(body)["text"] == "second":  # asked only once the first reply was collected
            with psycopg.connect(database_url) as other:
                seen_cached.append(other.execute(  # this server's reply to "first"
                    "SELECT count(*) FROM llm_cache WHERE base_url = %s AND strpos(request::text, %s) > 0",
                    (normalise_base_url(running.base_url), "first")).fetchone()[0])
        return verdict_reply(body)

    options = replace(FAST, max_concurrency=1)
    with OpenAIServer(reply) as running:
        results = make_llm(running, options, PostgresStore(conn, job_id)).complete_json([ask("first"), ask("second")])
    assert all(r.ok for r in results) and seen_cached == [1]
    conn.rollback()


def test_retry_after_is_respected(server):
    server.add_fault(Fault(status=429, retry_after=1))
    started = time.monotonic()
    llm = make_llm(server)
    [result] = llm.complete_json([ask("rate limited")])
    assert result.ok and server.request_count == 2
    assert time.monotonic() - started >= 1.0  # waited as asked, not just the 10 ms backoff
    assert llm.store.calls[0].attempts == 2


def test_server_error_timeout_and_reset_are_retried(server):
    server.add_fault(Fault(status=500))
    server.add_fault(Fault(hang=1.5))  # past the 0.5 s client timeout
    server.add_fault(Fault(reset=True))
    llm = make_llm(server, timeout=0.5)
    [result] = llm.complete_json([ask("eventually")])
    assert result.ok and result.reply.label == "EVENTUALLY"
    assert server.request_count == 4 and llm.store.calls[0].attempts == 4


def test_persistent_failure_is_an_outcome_not_an_exception(server):
    server.add_fault(Fault(status=503), times=None)
    llm = make_llm(server)
    [result] = llm.complete_json([ask("down")])
    assert result.outcome == "failed" and "503" in result.error
    assert server.request_count == FAST.max_retries + 1


def test_client_errors_are_not_retried(server):
    server.add_fault(Fault(status=401, message="invalid api key"))  # not the request's shape: no fallback
    [result] = make_llm(server).complete_json([ask("bad request")])
    assert result.outcome == "failed" and "invalid api key" in result.error and server.request_count == 1


def test_endpoint_that_keeps_failing_is_skipped_for_the_rest(server):
    server.add_fault(Fault(status=500), times=None)
    options = LLMOptions(model="test-model", max_concurrency=1, max_retries=1, backoff_initial=0.01,
                         backoff_max=0.02, failure_threshold=2)
    results = make_llm(server, options).complete_json([ask(f"t{i}") for i in range(6)])
    assert [r.outcome for r in results] == ["failed"] * 2 + ["unavailable"] * 4
    assert server.request_count == 2 * 2


def test_invalid_json_is_asked_again_with_the_error_shown(server):
    server.add_fault(Fault(content="Sure! Here is the label: HELLO"))
    llm = make_llm(server)
    [result] = llm.complete_json([ask("hello")])
    assert result.ok and server.request_count == 2
    repair = server.requests[1]["messages"]
    assert repair[-2] == {"role": "assistant", "content": "Sure! Here is the label: HELLO"}
    assert "not valid JSON" in repair[-1]["content"]
    assert [(c.outcome, c.repair) for c in llm.store.calls] == [("invalid", False), ("ok", True)]


def test_reply_that_never_validates_ends_invalid(server):
    server.add_fault(Fault(content='{"label": "x", "score": "high", "extra": 1}'), times=None)
    [result] = make_llm(server).complete_json([ask("hello")])
    assert result.outcome == "invalid" and "score" in result.error and "extra" in result.error
    assert server.request_count == 2  # the first answer and one repair


def test_an_invalid_reply_whose_repair_the_budget_declines_ends_invalid(server):
    """The reply came and failed validation; the call budget then declined its repair. The request
    ends invalid, saying why and that the repair was not answered: not "budget", which would tell the
    researcher (theme_labels.fallback) that the model was never asked."""
    server.add_fault(Fault(content="Sure! Here is the label: HELLO"))
    llm = LLM(client(server), FAST, MemoryStore(), call_budget=1)
    [result] = llm.complete_json([ask("hello")])
    assert result.outcome == "invalid" and server.request_count == 1
    assert "not valid JSON" in result.error and "repair not answered (budget: call budget 1 spent)" in result.error
    assert [(c.outcome, c.repair) for c in llm.store.calls] == [("invalid", False), ("budget", True)]


def test_reply_is_parsed_never_evaluated():
    reply, error = parse_reply("__import__('os').system('echo pwned')", Verdict)
    assert reply is None and "not valid JSON" in error
    reply, error = parse_reply('```json\n{"label": "A", "score": 1}\n```', Verdict)
    assert reply == Verdict(label="A", score=1) and error is None


def test_semantic_check_failure_is_repaired(server):
    request = JsonRequest("label", ask("hello!").messages, Verdict,
                          check=lambda v: "score must be even" if v.score % 2 else None)
    server.add_fault(Fault(content='{"label": "HELLO!", "score": 3}'))
    [result] = make_llm(server).complete_json([request])
    assert result.ok and result.reply.score == 6
    assert "score must be even" in server.requests[1]["messages"][-1]["content"]


def test_token_budget_is_honoured_and_cache_hits_stay_free(server):
    options = LLMOptions(model="test-model", max_concurrency=1, max_tokens=50)
    warm = make_llm(server, options)
    warm.complete_json([ask("cached before")])
    budget = 100  # each request reserves ~77 tokens (max_tokens 50 + prompt) and spends ~15: two fit
    llm = LLM(client(server), options, warm.store, token_budget=budget)
    results = llm.complete_json([ask(f"text number {i}") for i in range(8)] + [ask("cached before")])
    outcomes = [r.outcome for r in results]
    assert outcomes[0] == "ok" and "budget" in outcomes
    assert outcomes[-1] == "ok"  # a cache hit costs nothing, so it is served after the cap
    first_skip = outcomes.index("budget")
    assert set(outcomes[first_skip:-1]) == {"budget"}  # once reached, the cap holds for the job
    billed = sum(c.prompt_tokens + c.completion_tokens for c in llm.store.calls[-len(results):] if not c.cache_hit)
    assert 0 < billed <= budget
    assert llm.usage()["llm_budget_exhausted"] is True


def test_concurrency_is_bounded(server):
    server.add_fault(Fault(hang=0.3), times=None)
    options = LLMOptions(model="test-model", max_concurrency=3)
    results = make_llm(server, options).complete_json([ask(f"c{i}") for i in range(9)])
    assert all(r.ok for r in results)
    assert server.max_in_flight == 3


def test_same_model_name_on_another_server_asks_that_server(conn):
    """The cache identity includes the base URL: pointing MINER_LLM_MODEL's name at another server
    (MINER_LLM_BASE_URL changed) must not reuse the first server's replies."""
    with OpenAIServer(verdict_reply) as first, OpenAIServer(lambda body: {"label": "SECOND", "score": 2}) as second:
        [old] = make_llm(first, store=PostgresStore(conn, None)).complete_json([ask("which server")])
        [new] = make_llm(second, store=PostgresStore(conn, None)).complete_json([ask("which server")])
        assert first.request_count == 1 and second.request_count == 1
        assert old.reply == Verdict(label="WHICH SERVER", score=12) and new.reply == Verdict(label="SECOND", score=2)
        # The same server under another spelling of its URL is the same endpoint: a cache hit.
        same = LLM(openai.OpenAI(base_url=first.base_url.replace("http://", "HTTP://") + "//", api_key="test",
                                 max_retries=0), FAST, PostgresStore(conn, None))
        [again] = same.complete_json([ask("which server")])
        assert again.reply == old.reply and first.request_count == 1 and same.usage()["llm_cache_hits"] == 1
    stored = conn.execute("SELECT base_url, valid FROM llm_cache WHERE request->'messages' @> %s::jsonb ORDER BY 1",
                          (json.dumps([{"content": json.dumps({"text": "which server"})}]),)).fetchall()
    assert stored == sorted([(first.base_url, True), (second.base_url, True)])


def test_base_urls_are_normalised_to_one_endpoint_identity():
    assert normalise_base_url("HTTP://LocalHost:80/v1//") == "http://localhost/v1"
    assert normalise_base_url("https://api.example.com:443/v1/") == "https://api.example.com/v1"
    assert normalise_base_url("http://127.0.0.1:8077/v1") == "http://127.0.0.1:8077/v1"
    assert normalise_base_url("http://127.0.0.1:8077/V1") != normalise_base_url("http://127.0.0.1:8077/v1")


def test_invalid_replies_stay_cached_until_cleared_from_the_cli(database_url, miner_env):
    """A re-run of an unchanged study makes no request, even where the first reply was invalid; after
    the server is fixed, `miner llm cache clear --invalid-only` makes the next run ask again for those
    and only those."""
    from typer.testing import CliRunner

    from miner.cli import app

    options = LLMOptions(model="m-cache-clear", max_concurrency=1, repair_attempts=0, backoff_initial=0.01)
    with OpenAIServer(verdict_reply) as server, psycopg.connect(database_url) as conn:
        server.add_fault(Fault(content="no JSON here"), when=lambda body: request_data(body)["text"] == "broken")
        first = make_llm(server, options, PostgresStore(conn, None)).complete_json([ask("broken"), ask("fine")])
        conn.commit()
        assert [r.outcome for r in first] == ["invalid", "ok"] and server.request_count == 2
        rerun = make_llm(server, options, PostgresStore(conn, None)).complete_json([ask("broken"), ask("fine")])
        assert [r.outcome for r in rerun] == ["invalid", "ok"] and server.request_count == 2  # no request

        listed = CliRunner().invoke(app, ["llm", "cache", "list", "--model", "m-cache-clear"], env=miner_env)
        assert listed.exit_code == 0, listed.output
        assert "m-cache-clear" in listed.output and server.base_url in listed.output
        cleared = CliRunner().invoke(app, ["llm", "cache", "clear", "--model", "m-cache-clear", "--invalid-only",
                                           "--json"], env=miner_env)
        assert cleared.exit_code == 0, cleared.output
        assert json.loads(cleared.output) == [{"base_url": server.base_url, "model": "m-cache-clear",
                                               "valid": False, "replies": 1}]

        fixed = make_llm(server, options, PostgresStore(conn, None)).complete_json([ask("broken"), ask("fine")])
        conn.commit()
        assert [r.outcome for r in fixed] == ["ok", "ok"] and server.request_count == 3  # only "broken" asked
        everything = CliRunner().invoke(app, ["llm", "cache", "clear", "--model", "m-cache-clear"], env=miner_env)
        assert everything.exit_code == 0 and "2 cached replies removed" in everything.output, everything.output
        assert conn.execute("SELECT count(*) FROM llm_cache WHERE model = 'm-cache-clear'").fetchone()[0] == 0

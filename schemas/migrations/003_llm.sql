-- LLM labelling: response cache, call ledger, theme polarity and per-model sentences, and views.

-- llm_cache: replies of the chat endpoint, keyed by a hash of model + messages + parameters, so an
-- identical request is answered without a call. `request` holds the (scrubbed) messages sent.
CREATE TABLE llm_cache (
    cache_key         text PRIMARY KEY,        -- sha256 of the canonical request JSON
    model             text NOT NULL,
    request           jsonb NOT NULL,
    content           text NOT NULL,           -- the reply's message content, as received
    prompt_tokens     integer NOT NULL,
    completion_tokens integer NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- llm_calls: the ledger, one row per request the LLM layer answered (from the endpoint or the
-- cache) or declined (budget spent, endpoint unavailable).
CREATE TABLE llm_calls (
    call_id           bigserial PRIMARY KEY,
    job_id            uuid REFERENCES jobs ON DELETE CASCADE,   -- NULL = outside a job
    purpose           text NOT NULL,           -- label, distinct, model_sentences
    theme_id          integer,
    model             text NOT NULL,
    cache_key         text NOT NULL,
    repair            boolean NOT NULL DEFAULT false,  -- a re-ask after a reply failed validation
    cache_hit         boolean NOT NULL,
    attempts          integer NOT NULL,        -- HTTP requests made (0 for cache hits and skips)
    prompt_tokens     integer NOT NULL DEFAULT 0,      -- for cache hits: the cached reply's tokens
    completion_tokens integer NOT NULL DEFAULT 0,
    latency_ms        integer NOT NULL DEFAULT 0,      -- wall time including retries and backoff
    outcome           text NOT NULL
                      CHECK (outcome IN ('ok', 'invalid', 'failed', 'budget', 'unavailable')),
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_calls_job ON llm_calls (job_id);

-- theme_opinions: per theme of a job that had an LLM configured: the polarity the LLM gave, and
-- why the label fell back to the extractive one when it did.
CREATE TABLE theme_opinions (
    job_id    uuid NOT NULL,
    theme_id  integer NOT NULL,
    polarity  text CHECK (polarity IN ('positive', 'negative', 'mixed', 'neutral')),
    labeller  text NOT NULL,
    fallback  text,                            -- NULL, or budget / invalid / failed / unavailable
    PRIMARY KEY (job_id, theme_id),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

-- theme_sentences: one sentence per theme × session model on how the theme shows up for that
-- model, with the answers it cites (unit ids that exist; unknown ids were dropped).
CREATE TABLE theme_sentences (
    job_id        uuid NOT NULL,
    theme_id      integer NOT NULL,
    session_model text NOT NULL,
    sentence      text NOT NULL,
    unit_ids      text[] NOT NULL,
    labeller      text NOT NULL,
    PRIMARY KEY (job_id, theme_id, session_model),
    FOREIGN KEY (job_id, theme_id) REFERENCES themes ON DELETE CASCADE
);

-- theme_labels: each theme of the latest job with its label, who produced it, summary, polarity.
CREATE VIEW theme_labels AS
SELECT l.study, t.theme_id, t.label, t.labeller, t.summary, o.polarity, o.fallback, t.keywords,
       t.answers, t.interviews, l.job_id
FROM latest_jobs l
JOIN themes t USING (job_id)
LEFT JOIN theme_opinions o USING (job_id, theme_id);

-- theme_model_sentences: per theme × session model, the LLM's sentence, its cited answers and the
-- model's numbers for the theme.
CREATE VIEW theme_model_sentences AS
SELECT l.study, s.theme_id, t.label, o.polarity, s.session_model, s.sentence, s.unit_ids,
       st.answers, st.share, s.labeller, l.job_id
FROM latest_jobs l
JOIN theme_sentences s USING (job_id)
JOIN themes t USING (job_id, theme_id)
LEFT JOIN theme_opinions o USING (job_id, theme_id)
LEFT JOIN theme_model_stats st USING (job_id, theme_id, session_model);

-- llm_cost: the ledger per job and purpose. Billed tokens exclude cache hits; `requests` counts
-- HTTP requests including retries.
CREATE VIEW llm_cost AS
SELECT c.job_id, j.study, c.purpose, c.model,
       count(*)                                                        AS calls,
       sum(c.attempts)                                                 AS requests,
       count(*) FILTER (WHERE c.cache_hit)                             AS cache_hits,
       coalesce(sum(c.prompt_tokens) FILTER (WHERE NOT c.cache_hit), 0)     AS prompt_tokens,
       coalesce(sum(c.completion_tokens) FILTER (WHERE NOT c.cache_hit), 0) AS completion_tokens,
       coalesce(sum(c.prompt_tokens + c.completion_tokens) FILTER (WHERE NOT c.cache_hit), 0)
                                                                       AS billed_tokens,
       coalesce(sum(c.prompt_tokens + c.completion_tokens) FILTER (WHERE c.cache_hit), 0)
                                                                       AS cached_tokens,
       count(*) FILTER (WHERE c.outcome = 'ok')                        AS ok,
       count(*) FILTER (WHERE c.outcome = 'invalid')                   AS invalid,
       count(*) FILTER (WHERE c.outcome = 'failed')                    AS failed,
       count(*) FILTER (WHERE c.outcome IN ('budget', 'unavailable'))  AS skipped,
       sum(c.latency_ms)                                               AS latency_ms
FROM llm_calls c
LEFT JOIN jobs j USING (job_id)
GROUP BY c.job_id, j.study, c.purpose, c.model;

-- llm_endpoints: how each OpenAI-compatible endpoint (base URL + model) takes structured-output
-- requests, learnt by the LLM layer's negotiation (miner/llm_endpoint.py) or by `miner llm check`,
-- so that later calls go straight to the request shape that worked.
CREATE TABLE llm_endpoints (
    base_url    text NOT NULL,
    model       text NOT NULL,
    mode        text NOT NULL CHECK (mode IN ('json_schema', 'json_object', 'prompt')),
    detail      text,                          -- why the better modes were left (the server's words)
    checked_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (base_url, model)
);

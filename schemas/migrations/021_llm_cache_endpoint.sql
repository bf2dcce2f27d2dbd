-- llm_cache learns which endpoint answered and whether the reply was usable.
-- base_url: the endpoint (normalised: llm_endpoint.normalise_base_url) is part of the cache key
-- from now on, so the same model name on another server is asked, not answered from the cache.
-- valid: whether the reply passed validation (JSON schema and checks) when it was stored; invalid
-- replies are still cached (a re-run of an unchanged study makes no request), and
-- `miner llm cache clear --invalid-only` drops them.
-- Rows cached before this migration keep NULL in both: their keys were made without a base URL,
-- so no request finds them any more (the first run after upgrading asks again). They stay as a
-- record of what was sent until `miner llm cache clear` removes them.
ALTER TABLE llm_cache ADD COLUMN base_url text;
ALTER TABLE llm_cache ADD COLUMN valid boolean;
CREATE INDEX llm_cache_endpoint ON llm_cache (model, base_url);

-- The schema as it was before versioned migrations, kept idempotent (IF NOT EXISTS throughout) so that a ledger
-- created by that code takes this migration as already applied and keeps its rows.
-- Never edit an applied migration (sqlx checks its checksum): add the next numbered file instead.

CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    day TEXT NOT NULL,
    request_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    upstream_id TEXT,
    upstream_request_id TEXT,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    upstream_model TEXT,
    stream INTEGER NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error_class TEXT,
    input_tokens INTEGER NOT NULL,
    cache_write_5m_tokens INTEGER NOT NULL,
    cache_write_1h_tokens INTEGER NOT NULL,
    cache_read_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    thinking_tokens INTEGER,
    web_search_requests INTEGER NOT NULL,
    cost_nanousd INTEGER NOT NULL,
    upstream_cost_nanousd INTEGER NOT NULL,
    priced INTEGER NOT NULL,
    price_version TEXT NOT NULL,
    latency_ms INTEGER NOT NULL,
    ttft_ms INTEGER,
    session_id TEXT,
    billable INTEGER NOT NULL
);

-- Usage queries, budget windows and the start-up peak cost all read the rollups; only `ccgate clean` filters
-- requests by day, rarely enough for a scan. An index on `requests` would cost B-tree work on every insert.
DROP INDEX IF EXISTS requests_day;
DROP INDEX IF EXISTS requests_tenant_ts;

CREATE TABLE IF NOT EXISTS daily_rollup (
    day TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    model TEXT NOT NULL,
    requests INTEGER NOT NULL DEFAULT 0,
    input_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_5m_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0,
    cache_read_tokens INTEGER NOT NULL DEFAULT 0,
    output_tokens INTEGER NOT NULL DEFAULT 0,
    cost_nanousd INTEGER NOT NULL DEFAULT 0,
    upstream_cost_nanousd INTEGER NOT NULL DEFAULT 0,
    unpriced_requests INTEGER NOT NULL DEFAULT 0,
    errors INTEGER NOT NULL DEFAULT 0,
    max_cost_nanousd INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant_id, model)
);

CREATE INDEX IF NOT EXISTS daily_rollup_tenant_day ON daily_rollup (tenant_id, day);

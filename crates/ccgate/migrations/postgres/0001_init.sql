-- The PostgreSQL ledger: the SQLite schema (migrations/sqlite/0001..0004) in one file, with PostgreSQL types.
-- Every count and every nano-USD amount is BIGINT; sums saturate in the queries (LEAST/GREATEST over NUMERIC)
-- because an overflowing BIGINT raises an error, and a batch that always fails would be retried for ever.
-- Never edit an applied migration (sqlx checks its checksum): add the next numbered file instead.

CREATE TABLE requests (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    day TEXT NOT NULL,
    request_id TEXT NOT NULL,
    tenant_id TEXT NOT NULL,
    upstream_id TEXT,
    upstream_request_id TEXT,
    protocol TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model TEXT NOT NULL,
    upstream_model TEXT,
    stream BOOLEAN NOT NULL,
    status INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error_class TEXT,
    input_tokens BIGINT NOT NULL,
    cache_write_5m_tokens BIGINT NOT NULL,
    cache_write_1h_tokens BIGINT NOT NULL,
    cache_read_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    thinking_tokens BIGINT,
    web_search_requests BIGINT NOT NULL,
    cost_nanousd BIGINT NOT NULL,
    upstream_cost_nanousd BIGINT NOT NULL,
    priced BOOLEAN NOT NULL,
    price_version TEXT NOT NULL,
    latency_ms BIGINT NOT NULL,
    ttft_ms BIGINT,
    session_id TEXT,
    billable BOOLEAN NOT NULL,
    -- Which gateway wrote the row (`server.instanceId`, default `hostname:port`).
    instance_id TEXT
);

-- Replay asks whether a request journaled as in flight reached the ledger after all; request ids are UUIDv7
-- (time-ordered), so the index grows at its right edge. Usage queries read the rollups, never this table.
CREATE INDEX requests_request_id ON requests (request_id);

-- COLLATE "C": byte order, as SQLite compares text, so both backends list usage in the same order whatever the
-- database's locale.
CREATE TABLE daily_rollup (
    day TEXT COLLATE "C" NOT NULL,
    tenant_id TEXT COLLATE "C" NOT NULL,
    model TEXT COLLATE "C" NOT NULL,
    requests BIGINT NOT NULL DEFAULT 0,
    input_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_5m_tokens BIGINT NOT NULL DEFAULT 0,
    cache_write_1h_tokens BIGINT NOT NULL DEFAULT 0,
    cache_read_tokens BIGINT NOT NULL DEFAULT 0,
    output_tokens BIGINT NOT NULL DEFAULT 0,
    cost_nanousd BIGINT NOT NULL DEFAULT 0,
    upstream_cost_nanousd BIGINT NOT NULL DEFAULT 0,
    unpriced_requests BIGINT NOT NULL DEFAULT 0,
    errors BIGINT NOT NULL DEFAULT 0,
    max_cost_nanousd BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (day, tenant_id, model)
);

CREATE INDEX daily_rollup_tenant_day ON daily_rollup (tenant_id, day);

-- The crash journals' high-water marks (see crates/ccgate/src/ledger/journal.rs). SQLite has one row (one
-- instance, one journal); here every instance has its own journal in its own data folder, numbered
-- independently, so each has its own row, keyed by the id kept in that journal folder.
CREATE TABLE ledger_journal (
    journal_id TEXT PRIMARY KEY,
    committed_seq BIGINT NOT NULL
);

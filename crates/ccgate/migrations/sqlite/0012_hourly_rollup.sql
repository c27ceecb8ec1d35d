-- Usage per UTC hour, tenant, model and upstream ('' when none was reached), for the console's time series
-- (crates/ccgate/src/api/admin_usage.rs). Written in the same transaction as `requests` and `daily_rollup`, from the
-- same rows (billable, not refused: crates/ccgate/src/ledger/rollup.rs). Filled here from the rows already stored.
-- Never edit an applied migration.
CREATE TABLE IF NOT EXISTS hourly_rollup (
    hour_ms INTEGER NOT NULL,
    tenant_id TEXT NOT NULL,
    model TEXT NOT NULL,
    upstream_id TEXT NOT NULL,
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
    PRIMARY KEY (hour_ms, tenant_id, model, upstream_id)
);

INSERT INTO hourly_rollup (hour_ms, tenant_id, model, upstream_id, requests, input_tokens, cache_write_5m_tokens,
    cache_write_1h_tokens, cache_read_tokens, output_tokens, cost_nanousd, upstream_cost_nanousd, unpriced_requests,
    errors)
SELECT (ts_ms / 3600000) * 3600000, tenant_id, model, COALESCE(upstream_id, ''), COUNT(*), CAST(TOTAL(input_tokens) AS INTEGER),
    CAST(TOTAL(cache_write_5m_tokens) AS INTEGER), CAST(TOTAL(cache_write_1h_tokens) AS INTEGER), CAST(TOTAL(cache_read_tokens) AS INTEGER), CAST(TOTAL(output_tokens) AS INTEGER),
    CAST(TOTAL(cost_nanousd) AS INTEGER), CAST(TOTAL(upstream_cost_nanousd) AS INTEGER),
    SUM(CASE WHEN priced = 0 AND input_tokens + output_tokens > 0 THEN 1 ELSE 0 END),
    SUM(CASE WHEN status >= 400 OR outcome IN ('upstream_error', 'interrupted') THEN 1 ELSE 0 END)
FROM requests
WHERE billable != 0 AND outcome != 'rejected' AND ts_ms >= 0
GROUP BY 1, 2, 3, 4;

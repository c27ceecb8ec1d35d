-- Upstream trust shared by every instance (crates/ccgate/src/trust/, docs/trust.md): the request ids that showed
-- a suspect behaviour (a flag's evidence), and the canary's schedule and results. Never edit an applied migration.
CREATE TABLE trust_samples (
    upstream_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    request_id TEXT NOT NULL,
    ts_ms BIGINT NOT NULL,
    PRIMARY KEY (upstream_id, check_name, request_id)
);
CREATE INDEX trust_samples_recent ON trust_samples (upstream_id, check_name, ts_ms);
-- One row per upstream with a canary: claimed_ms is when the last probe was claimed (one probe per interval for
-- the whole cluster); last_outcome is whether the last answered probe disagreed (NULL: it failed, or cleared).
CREATE TABLE trust_canary (
    upstream_id TEXT PRIMARY KEY,
    claimed_ms BIGINT NOT NULL,
    runs BIGINT NOT NULL DEFAULT 0,
    cost_nanousd BIGINT NOT NULL DEFAULT 0,
    streak BIGINT NOT NULL DEFAULT 0,
    last_outcome BOOLEAN,
    last_run TEXT,
    reference_run TEXT
);

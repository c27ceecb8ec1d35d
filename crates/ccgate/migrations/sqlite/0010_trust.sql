-- Upstream trust (crates/ccgate/src/trust/, docs/trust.md): named counters per upstream, model and hour, summed
-- by every instance, and the flags the checks raised with their evidence. Never edit an applied migration.
CREATE TABLE IF NOT EXISTS trust_counters (
    upstream_id TEXT NOT NULL,
    model TEXT NOT NULL,
    hour_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (upstream_id, model, hour_ms, name)
);
CREATE INDEX IF NOT EXISTS trust_counters_hour ON trust_counters (hour_ms);
CREATE TABLE IF NOT EXISTS trust_flags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    upstream_id TEXT NOT NULL,
    check_name TEXT NOT NULL,
    model TEXT NOT NULL,
    raised_ms INTEGER NOT NULL,
    cleared_ms INTEGER,
    evidence TEXT NOT NULL
);
-- At most one open flag per upstream and check.
CREATE UNIQUE INDEX IF NOT EXISTS trust_flags_open ON trust_flags (upstream_id, check_name) WHERE cleared_ms IS NULL;

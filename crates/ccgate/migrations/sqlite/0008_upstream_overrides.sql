-- Runtime overrides of an upstream's enabled/weight/priority made through the admin API (crates/ccgate/src/
-- overrides.rs); NULL: the file's value. Never edit an applied migration.
CREATE TABLE IF NOT EXISTS upstream_overrides (
    upstream_id TEXT PRIMARY KEY,
    enabled INTEGER,
    weight INTEGER,
    priority INTEGER,
    updated_ms INTEGER NOT NULL
);

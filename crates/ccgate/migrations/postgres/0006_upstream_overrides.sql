-- Runtime overrides of an upstream's enabled/weight/priority made through the admin API (crates/ccgate/src/
-- overrides.rs), shared by every instance; NULL: the file's value. Never edit an applied migration.
CREATE TABLE upstream_overrides (
    upstream_id TEXT PRIMARY KEY,
    enabled BOOLEAN,
    weight BIGINT,
    priority BIGINT,
    updated_ms BIGINT NOT NULL
);

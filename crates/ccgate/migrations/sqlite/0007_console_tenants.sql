-- Tenants made through the admin API (the console), beside tenants.json (crates/ccgate/src/tenants.rs). Only a
-- SHA-256 of the key is kept; `key_hint` is what the console shows. Never edit an applied migration.
CREATE TABLE IF NOT EXISTS console_tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    key_hint TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    allowed_models TEXT NOT NULL,
    limits TEXT NOT NULL,
    expires_at TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

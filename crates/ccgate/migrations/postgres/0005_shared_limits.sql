-- Several instances as one gateway (crates/ccgate/src/policy/lease.rs, crates/ccgate/src/routing/shared_pins.rs).
-- Never edit an applied migration: add the next numbered file instead.

-- A request id names one row: a batch whose commit reached the server but whose acknowledgement was lost is
-- written again after a reconnect, and must not count twice (`INSERT … ON CONFLICT (request_id) DO NOTHING`).
DROP INDEX IF EXISTS requests_request_id;
CREATE UNIQUE INDEX requests_request_id ON requests (request_id);

-- What each instance holds of a tenant's limits: `usd` (nano-USD carved from the budgets, for requests in flight and
-- settled ones not yet in the ledger) and `slots` (of maxConcurrent). A lease that is not renewed by `expires_at`
-- (its instance died or lost the database) counts for nothing.
CREATE TABLE limit_leases (
    tenant_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    amount BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, kind, instance_id)
);

-- Request tickets for `rpm`, granted in small batches; a batch counts in the rolling minute from `granted_at`.
CREATE TABLE rate_tickets (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    granted_at TIMESTAMPTZ NOT NULL,
    amount BIGINT NOT NULL
);
CREATE INDEX rate_tickets_tenant_time ON rate_tickets (tenant_id, granted_at);

-- Sessions moved off their hashed upstream by a failover (routing/pins.rs), shared so every instance sends a
-- session's next request to the same upstream.
CREATE TABLE session_pins (
    session_key TEXT PRIMARY KEY,
    -- Empty: the pin was dropped (the session is back on its hashed upstream).
    upstream_id TEXT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    -- Who made the change: an instance does not read back its own.
    instance_id TEXT NOT NULL
);
CREATE INDEX session_pins_updated ON session_pins (updated_at);

-- Tenants made through the admin API (the console), beside tenants.json; every instance loads them
-- (crates/ccgate/src/tenants.rs). Only a SHA-256 of the key is kept; `key_hint` is what the console shows.
CREATE TABLE console_tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_sha256 TEXT NOT NULL UNIQUE,
    key_hint TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    -- JSON: the allowedModels array and the limits object, as in tenants.json.
    allowed_models TEXT NOT NULL,
    limits TEXT NOT NULL,
    expires_at TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

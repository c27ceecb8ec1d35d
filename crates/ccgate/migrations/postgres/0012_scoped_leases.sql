-- Leases and rpm tickets of a tenant's `limits.models` entries (crates/ccgate/src/policy/lease.rs): `scope` is the
-- entry's pattern, '' for the tenant's own limits. Never edit an applied migration: add the next numbered file.
ALTER TABLE limit_leases ADD COLUMN scope TEXT NOT NULL DEFAULT '';
ALTER TABLE limit_leases DROP CONSTRAINT limit_leases_pkey;
ALTER TABLE limit_leases ADD PRIMARY KEY (tenant_id, scope, kind, instance_id);

ALTER TABLE rate_tickets ADD COLUMN scope TEXT NOT NULL DEFAULT '';
DROP INDEX IF EXISTS rate_tickets_tenant_time;
CREATE INDEX rate_tickets_tenant_scope_time ON rate_tickets (tenant_id, scope, granted_at);

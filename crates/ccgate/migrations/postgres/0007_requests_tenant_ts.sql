-- Rolling limits (limits.rolling) read a tenant's recent spend from `requests` in the lease claim's snapshot
-- (policy/lease.rs): by tenant and time, not a scan of every request.
CREATE INDEX IF NOT EXISTS requests_tenant_ts ON requests (tenant_id, ts_ms);

-- Rolling windows and `tpm` (docs/limits.md) read the last minutes to days of `requests` at start and when a reload
-- adds such a limit (crates/ccgate/src/cli/serve.rs `load_recent_limits`); without an index that is a scan of the
-- whole table. `ts_ms` grows with insertion (rows are written as requests settle), so new entries land at the right
-- edge of this B-tree: a small, constant cost per insert, unlike the per-tenant index dropped in 0001.
-- Never edit an applied migration.
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts_ms);

-- Refused requests (outcome 'rejected') are kept out of the rollups, so the usage reports count them in
-- `requests` (the SQLite ledger's migration 0003 does the same): a partial index holds only those rows.
CREATE INDEX IF NOT EXISTS requests_refused ON requests (day, tenant_id, status, error_class)
    WHERE outcome = 'rejected';

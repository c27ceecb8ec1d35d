-- Which gateway wrote the row (`server.instanceId`, default `hostname:port`): several instances can share one
-- PostgreSQL ledger, and SQLite keeps the same columns so that both backends answer the same queries.
-- NULL for rows written before this migration, and for rows replayed from a journal line written before it.
ALTER TABLE requests ADD COLUMN instance_id TEXT;

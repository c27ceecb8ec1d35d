-- The crash journal's high-water mark (see crates/ccgate/src/ledger/journal.rs): every batch commit stores the
-- highest journal sequence number it holds, in the same transaction, so replay at start-up adds each row once.
CREATE TABLE IF NOT EXISTS ledger_journal (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    committed_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO ledger_journal (id, committed_seq) VALUES (1, 0);

-- Replay asks whether a request journaled as in flight reached the ledger after all; request ids are UUIDv7
-- (time-ordered), so the index grows at its right edge and costs little per insert.
CREATE INDEX IF NOT EXISTS requests_request_id ON requests (request_id);

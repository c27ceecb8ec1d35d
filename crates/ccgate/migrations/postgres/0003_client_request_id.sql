-- The client's own `x-request-id`, when it sent a sane one (telemetry/request_id.rs). It is kept beside
-- `request_id`, never in it: a client may send the same id twice, and `request_id` must stay unique (the crash
-- journal's replay finds stored rows by it). NULL when the client sent none, and for older rows.
ALTER TABLE requests ADD COLUMN IF NOT EXISTS client_request_id TEXT;

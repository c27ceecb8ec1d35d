-- Console login sessions of the admin (crates/ccgate/src/api/admin_session.rs). Only the SHA-256 of the session
-- cookie is kept; `credential_tag` ties the session to the admin credential it was made with (a changed password
-- ends it). Never edit an applied migration.
CREATE TABLE IF NOT EXISTS admin_sessions (
    token_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    csrf_token TEXT NOT NULL,
    credential_tag TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_sessions_expires ON admin_sessions (expires_ms);

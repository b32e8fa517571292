-- lap-tui schema, version 2: the relay's per-session tokens (docs/HARNESSES.md).
-- Only a SHA-256 of each token is kept. Deleting the session (or its agent) deletes its
-- tokens: that is the revocation. `turn_id` is the turn the relay charges tokens and cost to.
CREATE TABLE relay_tokens (
    token_hash  TEXT PRIMARY KEY,
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    turn_id     TEXT,
    created_at  TEXT NOT NULL
);
CREATE INDEX relay_tokens_by_session ON relay_tokens (session_id);

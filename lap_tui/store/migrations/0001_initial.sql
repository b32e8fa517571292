-- lap-tui schema, version 1. Portable SQL: the same file runs on SQLite and PostgreSQL.
-- Timestamps are RFC 3339 UTC text of fixed width (they sort as text); JSON is text.

CREATE TABLE agents (
    id              TEXT PRIMARY KEY,
    team            TEXT NOT NULL,
    name            TEXT NOT NULL,
    model           TEXT NOT NULL,
    system_prompt   TEXT NOT NULL DEFAULT '',
    harness         TEXT NOT NULL DEFAULT 'builtin',
    sandbox         TEXT NOT NULL DEFAULT '{}',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    UNIQUE (team, name)
);

CREATE TABLE sessions (
    id                  TEXT PRIMARY KEY,
    agent_id            TEXT NOT NULL REFERENCES agents (id) ON DELETE CASCADE,
    title               TEXT NOT NULL DEFAULT '',
    status              TEXT NOT NULL DEFAULT 'idle',
    context_key         TEXT,
    sandbox_ref         TEXT,
    harness_session_id  TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    prompt_tokens       BIGINT NOT NULL DEFAULT 0,
    completion_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    -- The journal's per-session counter: appending bumps it in the same transaction,
    -- which serialises appenders of one session and makes `seq` gap-free and unique.
    last_seq            BIGINT NOT NULL DEFAULT 0
);
-- Listings page by last activity (keyset pagination on (updated_at, id)).
CREATE INDEX sessions_by_activity ON sessions (updated_at, id);
CREATE INDEX sessions_by_agent ON sessions (agent_id, updated_at, id);

CREATE TABLE turns (
    id                  TEXT PRIMARY KEY,
    session_id          TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    status              TEXT NOT NULL,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL,
    prompt_tokens       BIGINT NOT NULL DEFAULT 0,
    completion_tokens   BIGINT NOT NULL DEFAULT 0,
    cost_usd            DOUBLE PRECISION NOT NULL DEFAULT 0,
    error               TEXT
);
CREATE INDEX turns_by_session ON turns (session_id, created_at);
CREATE INDEX turns_by_status ON turns (status, created_at);

-- Append-only: rows are inserted, never updated. (session_id, seq) is the primary key,
-- so "last N" and "page backwards" are index range scans.
CREATE TABLE events (
    session_id  TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    seq         BIGINT NOT NULL,
    turn_id     TEXT,
    kind        TEXT NOT NULL,
    at          TEXT NOT NULL,
    data        TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, seq)
);

-- One driver per session. Times are epoch seconds from the writer's clock.
CREATE TABLE leases (
    session_id    TEXT PRIMARY KEY REFERENCES sessions (id) ON DELETE CASCADE,
    holder        TEXT NOT NULL,
    acquired_at   DOUBLE PRECISION NOT NULL,
    heartbeat_at  DOUBLE PRECISION NOT NULL,
    expires_at    DOUBLE PRECISION NOT NULL
);

-- Sandboxes as the backends report them, so every process and view sees the same state.
CREATE TABLE sandboxes (
    id              TEXT PRIMARY KEY,
    backend         TEXT NOT NULL,
    team            TEXT NOT NULL,
    agent_id        TEXT,
    session_id      TEXT,
    context_key     TEXT,
    phase           TEXT NOT NULL,
    ready           INTEGER NOT NULL DEFAULT 0,
    restarts        INTEGER NOT NULL DEFAULT 0,
    message         TEXT NOT NULL DEFAULT '',
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    last_used_at    TEXT,
    suspended_at    TEXT,
    data            TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX sandboxes_by_session ON sandboxes (session_id);
CREATE UNIQUE INDEX sandboxes_by_context ON sandboxes (backend, team, context_key);

-- Parlor signaling server schema. Times are Unix milliseconds (UTC).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,           -- argon2id PHC string (salted)
    created_at    INTEGER NOT NULL
);

CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,      -- SHA-256 of the opaque token; the token itself is never stored
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,          -- slides forward on each use
    revoked_at  INTEGER
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE rooms (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    owner_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,  -- NULL for direct rooms
    direct_key  TEXT UNIQUE,               -- "<lower user id>:<higher user id>" for direct rooms
    last_seq    INTEGER NOT NULL DEFAULT 0, -- highest timeline sequence number handed out
    created_at  INTEGER NOT NULL
);
CREATE INDEX rooms_kind_name ON rooms(kind, name);

CREATE TABLE memberships (
    room_id        INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    last_read_seq  INTEGER NOT NULL DEFAULT 0,
    joined_at      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);

-- A room's timeline: messages, and the edits and deletions of messages, each with its own seq.
-- Message rows also hold the message's current state so history needs no replay.
CREATE TABLE timeline (
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('message', 'edit', 'delete')),
    author_id   INTEGER NOT NULL REFERENCES users(id),
    client_id   TEXT,                      -- messages only: the sender's id, for deduplication
    target_seq  INTEGER,                   -- edits and deletions: the message they change
    text        TEXT NOT NULL,             -- messages: current text ('' once deleted); edits: new text
    created_at  INTEGER NOT NULL,
    edited_at   INTEGER,
    deleted_at  INTEGER,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX timeline_client_id ON timeline(room_id, author_id, client_id)
    WHERE client_id IS NOT NULL;

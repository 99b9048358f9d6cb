-- Parlor client's local store: one file per account. A cache of the server's rooms and
-- messages (synced by sequence number), the outbox of messages not yet accepted by the server,
-- and a full-text index over message text.

CREATE TABLE rooms (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    owner_id      INTEGER,
    synced_seq    INTEGER NOT NULL DEFAULT 0,   -- every timeline entry up to here is applied
    last_read_seq INTEGER NOT NULL DEFAULT 0
);

-- A rowid table (not WITHOUT ROWID) so the FTS index can refer to it.
CREATE TABLE messages (
    room_id    INTEGER NOT NULL,
    seq        INTEGER NOT NULL,
    client_id  TEXT NOT NULL,
    author_id  INTEGER NOT NULL,
    text       TEXT NOT NULL,
    sent_at    INTEGER NOT NULL,
    edited_at  INTEGER,
    deleted    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (room_id, seq)
);

CREATE VIRTUAL TABLE messages_fts USING fts5(text, content = 'messages', content_rowid = 'rowid');
CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;
CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
END;
CREATE TRIGGER messages_au AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.rowid, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.rowid, new.text);
END;

-- Messages written here and not yet accepted by the server. The client id is what makes a
-- resend after a crash or a dropped connection safe: the server deduplicates on it.
CREATE TABLE outbox (
    client_id   TEXT PRIMARY KEY,
    room_id     INTEGER NOT NULL,
    text        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    last_error  TEXT
);

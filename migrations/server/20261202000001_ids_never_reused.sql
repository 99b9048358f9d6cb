-- Ids of users, sessions and rooms are never handed out twice. Without AUTOINCREMENT, SQLite
-- gives a new row max(id) + 1, so deleting the newest room gave its id to the next room
-- created, and a member who was offline then synced "room 5 since seq 4" into a different room.
-- Timeline entries are (room, seq), so rooms cover messages.
--
-- SQLite cannot add AUTOINCREMENT to a table, so each is rebuilt as its manual describes
-- (https://sqlite.org/lang_altertable.html#otheralter). That needs foreign keys off, which
-- `Store::open` arranges: migrations run on a connection of their own without them. A CHECK
-- at the end fails the migration, and rolls it back, if a reference broke.

CREATE TABLE users_new (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,           -- argon2id PHC string (salted)
    created_at    INTEGER NOT NULL
);
INSERT INTO users_new (id, username, display_name, password_hash, created_at)
    SELECT id, username, display_name, password_hash, created_at FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;

CREATE TABLE sessions_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash  BLOB NOT NULL UNIQUE,      -- SHA-256 of the opaque token; the token itself is never stored
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,          -- slides forward on each use
    revoked_at  INTEGER
);
INSERT INTO sessions_new (id, user_id, token_hash, created_at, expires_at, revoked_at)
    SELECT id, user_id, token_hash, created_at, expires_at, revoked_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE rooms_new (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('public', 'private', 'direct')),
    owner_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,  -- NULL for direct rooms
    direct_key  TEXT UNIQUE,               -- "<lower user id>:<higher user id>" for direct rooms
    last_seq    INTEGER NOT NULL DEFAULT 0, -- highest timeline sequence number handed out
    created_at  INTEGER NOT NULL
);
INSERT INTO rooms_new (id, name, kind, owner_id, direct_key, last_seq, created_at)
    SELECT id, name, kind, owner_id, direct_key, last_seq, created_at FROM rooms;
DROP TABLE rooms;
ALTER TABLE rooms_new RENAME TO rooms;
CREATE INDEX rooms_kind_name ON rooms(kind, name);

-- A reference the rebuild broke fails this CHECK, and with it the migration (rolled back).
CREATE TEMP TABLE foreign_keys_intact (broken INTEGER CHECK (broken = 0));
INSERT INTO foreign_keys_intact SELECT count(*) FROM pragma_foreign_key_check;
DROP TABLE foreign_keys_intact;

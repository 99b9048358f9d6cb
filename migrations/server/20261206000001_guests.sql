-- Guests: people without an account let into one room through a link its owner made.

-- A room's guest links. As with session tokens and invites, only a hash of the code is kept.
CREATE TABLE room_invites (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    room_id     INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    code_hash   BLOB NOT NULL UNIQUE,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    uses_left   INTEGER CHECK (uses_left IS NULL OR uses_left >= 0),  -- NULL: any number
    revoked_at  INTEGER
);
CREATE INDEX room_invites_by_room ON room_invites (room_id);

-- A guest is a user row with the room they may use (kept when the room or the link goes, so a
-- guest never turns into an account) and the link they came through. Guests have no password:
-- they cannot log in, only authenticate with their session token, which expires with the link.
ALTER TABLE users ADD COLUMN guest_room_id INTEGER;
ALTER TABLE users ADD COLUMN guest_invite_id INTEGER REFERENCES room_invites(id) ON DELETE SET NULL;
CREATE INDEX users_by_guest_invite ON users (guest_invite_id) WHERE guest_invite_id IS NOT NULL;

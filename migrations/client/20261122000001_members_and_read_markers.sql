-- Members of each room as last seen (the members panel and author names work offline), and the
-- read marker per room moves only forward (rooms.last_read_seq already exists).
CREATE TABLE members (
    room_id       INTEGER NOT NULL,
    user_id       INTEGER NOT NULL,
    username      TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL DEFAULT 'member',
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE INDEX messages_unread ON messages (room_id, seq, author_id);

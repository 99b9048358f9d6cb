-- Stretches of a room's timeline not held locally: messages with after_seq < seq < before_seq.
-- A large room opens at its newest page (the rest is one gap) and a long absence leaves one;
-- older pages are fetched into them as the reader scrolls back.
CREATE TABLE gaps (
    room_id    INTEGER NOT NULL,
    after_seq  INTEGER NOT NULL,
    before_seq INTEGER NOT NULL,
    PRIMARY KEY (room_id, before_seq)
) WITHOUT ROWID;

-- Read markers: the player has read the conversation up to this seq. Unread counts the
-- character's messages after it.
ALTER TABLE conversations
    ADD COLUMN read_seq INT UNSIGNED NOT NULL DEFAULT 0;

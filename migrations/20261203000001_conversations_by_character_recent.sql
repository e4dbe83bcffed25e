-- A character's conversations with every player, most recently updated first
-- (`GET /conversations?character_id=` without a player, for the studio): read from the
-- index in order, a page at a time, rather than sorting all of a popular character's
-- conversations on every request.
ALTER TABLE conversations
    ADD KEY conversations_by_character_recent (character_id, updated_at, id);

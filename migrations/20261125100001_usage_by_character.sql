-- Usage reports filtered by character read only that character's rows of the range.
CREATE INDEX usage_by_character ON usage_records (character_id, created_at);

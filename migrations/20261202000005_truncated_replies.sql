-- A reply cut short (the turn's deadline came mid-stream, or it reached its byte cap) is
-- kept with the text already sent, and says so.
ALTER TABLE messages ADD COLUMN truncated BOOLEAN NOT NULL DEFAULT FALSE AFTER fallback_reason;

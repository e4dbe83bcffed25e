-- Housekeeping forgets quota calls older than an hour for every player at once (the
-- turn no longer prunes its player's on its way): it needs the time alone.
CREATE INDEX quota_calls_by_time ON quota_calls (reserved_at);

-- Stored answers hold message text: they are purged after IDEMPOTENCY_RETENTION_HOURS,
-- oldest first, through this index.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

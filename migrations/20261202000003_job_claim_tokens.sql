-- Which claim of a running job is current: every update of a running job names it, so a
-- worker whose lease was taken over can change nothing, and its heartbeat tells it so.
ALTER TABLE jobs ADD COLUMN claim_token CHAR(36) NULL AFTER lease_until;

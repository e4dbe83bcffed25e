-- Shared state that makes replicas behave as one: per-player call quota and budget
-- reservations, spend counters, idempotency keys and per-conversation turn leases.
-- Everything is keyed by player or conversation (sharding-friendly), except the
-- global daily counter, which only exists when GLOBAL_DAILY_BUDGET_USD is used.

-- One row per conversation call allowed for a player; the quota counts the last hour.
CREATE TABLE quota_calls (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id   VARCHAR(64) NOT NULL,
    reserved_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY quota_calls_by_player (player_id, reserved_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The worst-case cost of calls in flight; deleted when the call settles, ignored once
-- expired (the replica that made it died).
CREATE TABLE budget_reservations (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id   VARCHAR(64)    NOT NULL,
    amount_usd  DECIMAL(12, 6) NOT NULL,
    created_at  DATETIME(6)    NOT NULL,
    expires_at  DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    KEY budget_reservations_by_player (player_id, expires_at),
    KEY budget_reservations_by_expiry (expires_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Settled spend per player and UTC calendar month ('2026-11'), all purposes.
CREATE TABLE player_monthly_spend (
    player_id  VARCHAR(64)    NOT NULL,
    month      CHAR(7)        NOT NULL,
    spent_usd  DECIMAL(12, 6) NOT NULL DEFAULT 0,
    updated_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (player_id, month),
    KEY player_monthly_spend_by_month (month, spent_usd)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Settled spend of all players per UTC day, for GLOBAL_DAILY_BUDGET_USD.
CREATE TABLE daily_spend (
    day        DATE           NOT NULL,
    spent_usd  DECIMAL(12, 6) NOT NULL DEFAULT 0,
    updated_at DATETIME(6)    NOT NULL,
    PRIMARY KEY (day)
) ENGINE = InnoDB;

-- Idempotency-Key per conversation: the stored answer of the first request.
CREATE TABLE idempotency_keys (
    conversation_id VARCHAR(64)  NOT NULL,
    idempotency_key VARCHAR(128) NOT NULL,
    -- SHA-256 of the request body as parsed, to refuse a key reused for another request.
    request_hash    CHAR(64)     NOT NULL,
    -- Which attempt owns the key: the first request, or one that took over from it.
    claim_token     CHAR(36)     NOT NULL,
    -- NULL while the first request is being processed.
    response        MEDIUMTEXT   NULL,
    created_at      DATETIME(6)  NOT NULL,
    -- A request in progress past this time is taken to have died with its replica.
    expires_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (conversation_id, idempotency_key)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Who is processing a turn of the conversation right now: turns are serialized across
-- replicas without holding a connection during the provider call.
CREATE TABLE conversation_leases (
    conversation_id VARCHAR(64) NOT NULL,
    holder          CHAR(36)    NOT NULL,
    expires_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (conversation_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

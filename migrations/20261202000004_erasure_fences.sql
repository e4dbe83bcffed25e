-- Erasure that stays final. A player's erasures are counted under a keyed hash of the
-- id (HMAC-SHA256 with a service secret), never the id itself: a turn, call or job that
-- began before an erasure sees the count changed and writes nothing back. The same row
-- carries this month's spend and the player's own limit over the erasure, so "delete my
-- data" cannot reset a budget; the player's quota calls and reservations in flight carry
-- over re-keyed by the same hash. When the id is used again, its new player absorbs them.
CREATE TABLE player_erasures (
    player_key        CHAR(64)       NOT NULL,
    generation        INT UNSIGNED   NOT NULL,
    -- What is carried over, until the id is used again (carried = 1).
    carried           BOOLEAN        NOT NULL DEFAULT FALSE,
    month             CHAR(7)        NULL,
    spent_usd         DECIMAL(12, 6) NOT NULL DEFAULT 0,
    monthly_limit_usd DECIMAL(12, 6) NULL,
    erased_at         DATETIME(6)    NOT NULL,
    PRIMARY KEY (player_key)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

-- Secrets the service makes for itself once, shared by every replica through the
-- database (the erasure hash key when ERASURE_HASH_KEY is unset).
CREATE TABLE service_secrets (
    name  VARCHAR(64)  NOT NULL,
    value VARCHAR(128) NOT NULL,
    PRIMARY KEY (name)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

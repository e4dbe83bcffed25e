-- Characters, players, conversations, messages and usage records.
-- Ids are compared byte for byte (utf8mb4_bin): "Mara" and "mara" are two characters,
-- and any Unicode the game sends comes back intact. Times are UTC, to the microsecond.

CREATE TABLE characters (
    id             VARCHAR(64)  NOT NULL,
    name           VARCHAR(100) NOT NULL,
    persona        TEXT         NOT NULL,
    model          VARCHAR(100) NULL,
    -- {"high": [...], "medium": [...], "low": [...]} as JSON text; NULL means built-in lines.
    fallback_lines TEXT         NULL,
    created_at     DATETIME(6)  NOT NULL,
    updated_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE players (
    id                VARCHAR(64)   NOT NULL,
    -- NULL: the PLAYER_MONTHLY_BUDGET_USD default applies.
    monthly_limit_usd DECIMAL(12, 6) NULL,
    created_at        DATETIME(6)   NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- The latest affinity the game sent, per (character, player).
CREATE TABLE affinities (
    player_id    VARCHAR(64) NOT NULL,
    character_id VARCHAR(64) NOT NULL,
    affinity     SMALLINT    NOT NULL,
    updated_at   DATETIME(6) NOT NULL,
    PRIMARY KEY (player_id, character_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE conversations (
    id            VARCHAR(64) NOT NULL,
    player_id     VARCHAR(64) NOT NULL,
    character_id  VARCHAR(64) NOT NULL,
    -- The highest seq stored; the next message takes last_seq + 1, so seq stays gapless.
    last_seq      INT UNSIGNED NOT NULL DEFAULT 0,
    created_at    DATETIME(6) NOT NULL,
    updated_at    DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    KEY conversations_by_player (player_id, updated_at),
    KEY conversations_by_character (character_id, player_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE messages (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    conversation_id VARCHAR(64)  NOT NULL,
    seq             INT UNSIGNED NOT NULL,
    role            VARCHAR(16)  NOT NULL,
    content         TEXT         NOT NULL,
    -- 'llm' or 'fallback' for character messages, NULL for the player's.
    source          VARCHAR(16)  NULL,
    fallback_reason VARCHAR(32)  NULL,
    created_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY messages_by_conversation (conversation_id, seq)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row per LLM call of any purpose, including failed attempts that reached the provider.
CREATE TABLE usage_records (
    id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id         VARCHAR(64)    NULL,
    conversation_id   VARCHAR(64)    NULL,
    character_id      VARCHAR(64)    NULL,
    purpose           VARCHAR(32)    NOT NULL,
    model             VARCHAR(100)   NOT NULL,
    prompt_tokens     INT UNSIGNED   NOT NULL,
    completion_tokens INT UNSIGNED   NOT NULL,
    total_tokens      INT UNSIGNED   NOT NULL,
    -- TRUE when the provider gave no usage and the counts come from our tokenizer.
    tokens_estimated  BOOLEAN        NOT NULL DEFAULT FALSE,
    cost_usd          DECIMAL(12, 6) NOT NULL,
    latency_ms        INT UNSIGNED   NOT NULL,
    -- 'success', 'http_error', 'timeout', 'invalid_response'.
    outcome           VARCHAR(32)    NOT NULL,
    http_status       SMALLINT UNSIGNED NULL,
    created_at        DATETIME(6)    NOT NULL,
    PRIMARY KEY (id),
    KEY usage_by_player (player_id, created_at),
    KEY usage_by_conversation (conversation_id, created_at),
    KEY usage_by_time (created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

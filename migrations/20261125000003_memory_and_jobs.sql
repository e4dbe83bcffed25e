-- Memory: running summaries and extraction watermarks per conversation, long-term facts
-- per (player, character), the character's mood, and the durable background job queue.

ALTER TABLE conversations
    -- The running summary of messages 1..summary_seq (NULL until the first refresh).
    ADD COLUMN summary       TEXT         NULL,
    ADD COLUMN summary_seq   INT UNSIGNED NOT NULL DEFAULT 0,
    -- Fact extraction has read messages 1..extracted_seq.
    ADD COLUMN extracted_seq INT UNSIGNED NOT NULL DEFAULT 0,
    -- A few short labels for the conversation, as a JSON array of strings.
    ADD COLUMN topics        TEXT         NULL;

-- How the character now feels, from the last extraction. A row extraction creates before
-- the game ever sent an affinity holds 0, the default affinity.
ALTER TABLE affinities
    ADD COLUMN mood_label     VARCHAR(16)  NULL,
    ADD COLUMN mood_intensity DECIMAL(3, 2) NULL,
    ADD COLUMN mood_reason    VARCHAR(500) NULL;

CREATE TABLE memory_facts (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    player_id       VARCHAR(64)  NOT NULL,
    character_id    VARCHAR(64)  NOT NULL,
    text            VARCHAR(500) NOT NULL,
    -- SHA-256 of the normalized text: the same fact is stored once.
    text_hash       CHAR(64)     NOT NULL,
    importance      TINYINT UNSIGNED NOT NULL,
    -- Where it was learned.
    conversation_id VARCHAR(64)  NULL,
    from_seq        INT UNSIGNED NULL,
    to_seq          INT UNSIGNED NULL,
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL,
    last_used_at    DATETIME(6)  NULL,
    PRIMARY KEY (id),
    UNIQUE KEY memory_facts_once (player_id, character_id, text_hash),
    KEY memory_facts_by_rank (player_id, character_id, importance, updated_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

CREATE TABLE jobs (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    -- 'summarize' or 'extract_facts'.
    kind            VARCHAR(32)  NOT NULL,
    conversation_id VARCHAR(64)  NOT NULL,
    player_id       VARCHAR(64)  NOT NULL,
    character_id    VARCHAR(64)  NOT NULL,
    -- 'pending', 'running' or 'parked'; a finished job is deleted.
    status          VARCHAR(16)  NOT NULL,
    attempts        INT UNSIGNED NOT NULL DEFAULT 0,
    run_after       DATETIME(6)  NOT NULL,
    -- A running job whose lease has passed belongs to a worker that died.
    lease_until     DATETIME(6)  NULL,
    last_error      TEXT         NULL,
    -- kind:conversation while pending, NULL otherwise: one pending job of a kind per
    -- conversation, so a busy conversation does not pile up work.
    pending_key     VARCHAR(100) NULL,
    created_at      DATETIME(6)  NOT NULL,
    updated_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY jobs_coalesced (pending_key),
    KEY jobs_ready (status, run_after),
    KEY jobs_leased (status, lease_until),
    KEY jobs_by_player (player_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

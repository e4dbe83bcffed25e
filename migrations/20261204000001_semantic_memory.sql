-- Semantic memory: one vector per fact and per message, in a portable encoding (MySQL 8.0
-- and MariaDB 10.6 have no vector type), with the model and dimension that made it.

CREATE TABLE memory_vectors (
    -- Grows with every write (a re-embedding replaces the row under a new rev), so a
    -- replica's cache of a pair reads only what is newer than what it holds.
    rev             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    -- 'fact' (memory_facts.id) or 'message' (messages.id).
    kind            VARCHAR(8)   NOT NULL,
    item_id         BIGINT UNSIGNED NOT NULL,
    -- The pair the item belongs to: every read is keyed by it.
    player_id       VARCHAR(64)  NOT NULL,
    character_id    VARCHAR(64)  NOT NULL,
    -- For messages: where the message is, so a prompt can leave out its own window.
    conversation_id VARCHAR(64)  NULL,
    seq             INT UNSIGNED NULL,
    -- For facts: the text_hash of the text embedded; a fact rewritten since is stale.
    text_hash       CHAR(64)     NULL,
    model           VARCHAR(100) NOT NULL,
    dimensions      SMALLINT UNSIGNED NOT NULL,
    -- `dimensions` IEEE-754 float32 values, little-endian, unit length.
    vector          BLOB         NOT NULL,
    created_at      DATETIME(6)  NOT NULL,
    PRIMARY KEY (rev),
    UNIQUE KEY memory_vectors_item (kind, item_id),
    KEY memory_vectors_by_pair (player_id, character_id, model, rev),
    KEY memory_vectors_by_model (model)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- How far each embedding model's sweep has looked for messages without a vector, so a
-- model switched on late (or changed) reaches all of history, a page at a time.
CREATE TABLE embedding_sweeps (
    model            VARCHAR(100) NOT NULL,
    through_message  BIGINT UNSIGNED NOT NULL,
    PRIMARY KEY (model)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- A world the characters share: lore gated by scope and game flags, characters in
-- factions, game events their witnesses remember, and gossip that carries memories about
-- a player from one character to the others of its factions, with provenance.

-- The factions a character belongs to, as a JSON array of names (read with the character),
-- and one row per membership (for "who else is in this faction").
ALTER TABLE characters
    ADD COLUMN factions TEXT NULL AFTER fallback_lines;

CREATE TABLE character_factions (
    faction      VARCHAR(64) NOT NULL,
    character_id VARCHAR(64) NOT NULL,
    PRIMARY KEY (faction, character_id),
    KEY character_factions_by_character (character_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- World knowledge written by the studio. `scope` is 'world' (scope_id NULL), 'faction'
-- (scope_id: a faction name) or 'character' (scope_id: a character id); an entry is known
-- to a character in a turn only when every one of `requires_flags` is among the turn's
-- flags.
CREATE TABLE lore (
    id             VARCHAR(64)  NOT NULL,
    text           TEXT         NOT NULL,
    scope          VARCHAR(16)  NOT NULL,
    scope_id       VARCHAR(64)  NULL,
    -- JSON arrays of strings.
    tags           TEXT         NOT NULL,
    requires_flags TEXT         NOT NULL,
    created_at     DATETIME(6)  NOT NULL,
    updated_at     DATETIME(6)  NOT NULL,
    PRIMARY KEY (id),
    KEY lore_by_scope (scope, scope_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- One row, bumped by every change to the lore: a turn reads it with its character (no
-- statement of its own), and a replica reloads its copy of the lore only when it moved.
CREATE TABLE lore_revision (
    id       TINYINT UNSIGNED NOT NULL,
    revision BIGINT UNSIGNED  NOT NULL,
    PRIMARY KEY (id)
) ENGINE = InnoDB;
INSERT INTO lore_revision (id, revision) VALUES (1, 0);

-- Things that happened in the game, as the game reported them, once per client event id.
CREATE TABLE world_events (
    id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    client_event_id VARCHAR(64)   NOT NULL,
    -- SHA-256 of the request as parsed: a re-sent event is the same request.
    request_hash    CHAR(64)      NOT NULL,
    text            VARCHAR(2000) NOT NULL,
    importance      TINYINT UNSIGNED NOT NULL,
    player_id       VARCHAR(64)   NULL,
    -- JSON arrays: the witnesses and factions as sent, and every character that learned
    -- it at once (witnesses and the factions' members then).
    witnesses       TEXT          NOT NULL,
    factions        TEXT          NOT NULL,
    known_by        TEXT          NOT NULL,
    created_at      DATETIME(6)   NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY world_events_once (client_event_id),
    KEY world_events_by_player (player_id, id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Provenance of a memory, and its gossip. `source` gains 'event' and 'gossip'.
-- A memory of an event with no player involved is kept under player_id '' (no player id
-- is empty): every player's turns with that character see it.
ALTER TABLE memory_facts
    -- The character a hearsay memory was heard from.
    ADD COLUMN heard_from   VARCHAR(64)     NULL AFTER source,
    -- The game event it comes from (directly, or through gossip).
    ADD COLUMN event_id     BIGINT UNSIGNED NULL AFTER heard_from,
    -- The memory a hearsay memory was derived from: deleting that deletes this.
    ADD COLUMN derived_from BIGINT UNSIGNED NULL AFTER event_id,
    -- How many tellings away from a first-hand memory (0: first hand).
    ADD COLUMN hops         TINYINT UNSIGNED NOT NULL DEFAULT 0 AFTER derived_from,
    -- When it is to spread to the other members of its holder's factions (NULL: never,
    -- or done). Set when the memory is stored, cleared when it has spread.
    ADD COLUMN spread_at    DATETIME(6)     NULL AFTER hops,
    ADD KEY memory_facts_spreading (spread_at),
    ADD KEY memory_facts_derived (derived_from);

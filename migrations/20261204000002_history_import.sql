-- History import (`POST /conversations/{id}/import`): a studio moving from another system
-- brings its past conversations, in batches it may send again.
--
-- `client_id` is the studio's own id of an imported message (NULL for the messages of
-- turns). The unique key makes a re-sent message a no-op rather than a second copy, also
-- when two imports of one conversation race (MySQL and MariaDB let any number of NULLs
-- through a unique key, so turns are unaffected). It also tells background work which
-- messages came from an import: their facts are tagged `import`.
ALTER TABLE messages
    ADD COLUMN client_id VARCHAR(64) NULL AFTER conversation_id,
    ADD UNIQUE KEY messages_by_client_id (conversation_id, client_id);

-- Where a memory came from: 'conversation' (extracted from a turn's exchange) or 'import'
-- (from imported history). A later issue adds 'event' and 'gossip'. Existing facts all
-- came from conversations, hence the default.
ALTER TABLE memory_facts
    ADD COLUMN source VARCHAR(16) NOT NULL DEFAULT 'conversation' AFTER importance;

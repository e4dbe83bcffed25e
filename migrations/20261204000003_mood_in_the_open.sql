-- When the character's mood towards the player last changed (label or intensity), as
-- the extraction that read it saw the clock. `GET /memory` shows it, and a turn compares
-- it with the pair's last turn to give the mood's `affinity_hint` once per change.
-- NULL for moods stored before this column existed: no hint for them.
ALTER TABLE affinities
    ADD COLUMN mood_updated_at DATETIME(6) NULL;

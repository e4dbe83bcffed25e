-- The day's spend is one counter every paid call of every player adds to, inside the
-- transaction that stores its turn: one row would make all turns take its lock in turn
-- until they commit. Spread over shards (a call adds to one at random; the day is their
-- sum), concurrent turns rarely meet on one.
ALTER TABLE daily_spend
    ADD COLUMN shard TINYINT UNSIGNED NOT NULL DEFAULT 0 AFTER day,
    DROP PRIMARY KEY,
    ADD PRIMARY KEY (day, shard);

-- A call of a model with no price of its own is charged at an assumed price (the
-- prices file's "*" entry, else the highest known prices), and says so here.
ALTER TABLE usage_records ADD COLUMN price_assumed BOOLEAN NOT NULL DEFAULT FALSE AFTER cost_usd;

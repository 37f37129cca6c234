-- intakesvc: the quarantine of dispute events that can never be applied,
-- the consumers of the change feed, and the retention horizons. See
-- docs/intake.md (poison events, retention).

-- +goose Up

-- A dispute event whose application failed for good (the database refuses
-- it whatever the retry: an index row too large, a byte it cannot store, an
-- illegal lifecycle move). The intake stream records it here and moves on;
-- `serbero ctl disputes quarantine` lists it. One row per event; a replay
-- of the same event bumps seen_count and last_seen_at. dispute_id is the
-- event's d tag cut to 256 characters (the whole tag may be what cannot be
-- stored), reason is the error, cut to 1,024 characters.
CREATE TABLE intake_quarantine (
    event_id      TEXT PRIMARY KEY,
    cursor        BIGINT NOT NULL,
    dispute_id    TEXT,
    class         TEXT NOT NULL,
    reason        TEXT NOT NULL,
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    seen_count    BIGINT NOT NULL DEFAULT 1 CHECK (seen_count > 0)
);
CREATE INDEX idx_intake_quarantine_last_seen ON intake_quarantine (last_seen_at);

-- Consumers of WatchDisputes that named themselves: where each last
-- resumed. Retention never removes a change a consumer seen within the
-- retention period has not passed.
CREATE TABLE intake_feed_consumers (
    consumer TEXT PRIMARY KEY,
    cursor   BIGINT NOT NULL CHECK (cursor >= 0),
    seen_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- What retention has removed, per table: every dispute_changes row with an
-- id at or below horizon is gone (rows above it are untouched by
-- retention), so a WatchDisputes cursor below it has lost changes.
CREATE TABLE intake_retention (
    name       TEXT PRIMARY KEY,
    horizon    BIGINT NOT NULL DEFAULT 0 CHECK (horizon >= 0),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO intake_retention (name, horizon) VALUES ('dispute_changes', 0);

-- Finished outbox rows are removed by age (retention): find them by it.
CREATE INDEX idx_intake_jobs_done ON intake_notification_jobs (done_at) WHERE done_at IS NOT NULL;
CREATE INDEX idx_dispute_changes_changed_at ON dispute_changes (changed_at);

-- +goose Down
DROP INDEX idx_dispute_changes_changed_at;
DROP INDEX idx_intake_jobs_done;
DROP TABLE intake_retention;
DROP TABLE intake_feed_consumers;
DROP TABLE intake_quarantine;

-- relaygw: when this deployment first started watching the Mostro node's
-- dispute events (see docs/relaygw.md#first-start). One row, written once:
-- by the first start (no dispute cursor stored yet), or, for a database that
-- already had cursors, with started_at 0 (nothing counts as backfill).
-- Events created before started_at are streamed with backfill set.

-- +goose Up
CREATE TABLE relaygw_dispute_start (
    singleton        BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    started_at       BIGINT NOT NULL CHECK (started_at >= 0),
    backfill_seconds BIGINT NOT NULL CHECK (backfill_seconds >= 0),
    recorded_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE relaygw_dispute_start;

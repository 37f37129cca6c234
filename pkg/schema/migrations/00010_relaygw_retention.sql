-- relaygw: what its retention job needs (see docs/relaygw.md#retention).

-- +goose Up

-- Where each consumer of a relaygw stream last resumed from: the
-- after_cursor it opened a stream with. The retention job never deletes a
-- row a consumer seen within the retention period has not passed.
CREATE TABLE relaygw_stream_consumers (
    stream       TEXT NOT NULL CHECK (stream IN ('disputes')),
    consumer     TEXT NOT NULL CHECK (length(consumer) <= 64),
    after_cursor BIGINT NOT NULL CHECK (after_cursor >= 0),
    seen_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (stream, consumer)
);

-- The idempotency records are pruned by age.
CREATE INDEX idx_relaygw_dm_outbox_created ON relaygw_dm_outbox (created_at);
CREATE INDEX idx_relaygw_chat_outbox_created ON relaygw_chat_outbox (created_at);

-- +goose Down
DROP INDEX idx_relaygw_chat_outbox_created;
DROP INDEX idx_relaygw_dm_outbox_created;
DROP TABLE relaygw_stream_consumers;

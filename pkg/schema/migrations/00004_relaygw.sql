-- relaygw: durable state of the Nostr gateway. No secret ever lands here:
-- chat keys are re-derived from Serbero's key and the stored trade pubkeys,
-- DM bodies are stored only inside the recipient's gift wrap (ciphertext).

-- +goose Up

-- Subscription cursors: per subscription and relay, the newest created_at
-- of an event handled durably (capped at the local clock). Re-subscribing
-- starts from it minus [relaygw].resubscribe_margin_seconds.
CREATE TABLE relaygw_cursors (
    sub_key         TEXT NOT NULL,
    relay_url       TEXT NOT NULL,
    last_created_at BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (sub_key, relay_url)
);

-- Verified kind 38386 events of the configured Mostro node, each stored
-- once. cursor is the position StreamDisputeEvents resumes after; inserts
-- are serialised (advisory lock) so cursors become visible in order.
CREATE TABLE relaygw_dispute_events (
    cursor      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    TEXT NOT NULL UNIQUE CHECK (length(event_id) = 64),
    pubkey      TEXT NOT NULL,
    kind        INTEGER NOT NULL,
    created_at  BIGINT NOT NULL,
    tags        JSONB NOT NULL,
    content     TEXT NOT NULL,
    sig         TEXT NOT NULL,
    relay_url   TEXT NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The newest verified kind 38385 info event per Mostro node.
CREATE TABLE relaygw_mostro_info (
    pubkey            TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL,
    created_at        BIGINT NOT NULL,
    protocol_version  INTEGER NOT NULL CHECK (protocol_version >= 1), -- as advertised (relaygw speaks 1 and 2)
    pow               INTEGER NOT NULL CHECK (pow >= 0),
    pow_first_contact INTEGER NOT NULL CHECK (pow_first_contact >= 0),
    mostro_version    TEXT NOT NULL DEFAULT '',
    event_json        JSONB NOT NULL,
    fetched_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Idempotency of SendDirectMessage: the signed gift wrap built for a key
-- (ciphertext only), so a retry republishes the identical event and never
-- a second, different message. request_mac is an HMAC (keyed by a key
-- derived from Serbero's secret) of recipient and body, to refuse reuse of a
-- key for another message without storing the body. A DM's row is about
-- 2.6 kB (the wrap is ciphertext, which does not compress): rows up to a
-- page stay inline (toast_tuple_target), instead of a futile compression
-- attempt and a TOAST insert on every DM.
CREATE TABLE relaygw_dm_outbox (
    idempotency_key TEXT PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 256),
    recipient       TEXT NOT NULL,
    request_mac     TEXT NOT NULL,
    event_id        TEXT NOT NULL UNIQUE,
    event_json      JSONB NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at    TIMESTAMPTZ
) WITH (toast_tuple_target = 8160);

-- Dispute-chat channels registered by StreamChatMessages (public addresses
-- only). v2_cursor is the created_at cursor of the kind 14 subscription.
CREATE TABLE relaygw_chat_channels (
    party_trade_pubkey TEXT PRIMARY KEY CHECK (length(party_trade_pubkey) = 64),
    v1_shared_pubkey   TEXT NOT NULL,
    v2_conv_pubkey     TEXT NOT NULL,
    v2_sign_pubkey     TEXT NOT NULL,
    v2_cursor          BIGINT,
    registered_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Validated inbound chat lines, each inner event once (durable dedup by
-- inner id). cursor is the position StreamChatMessages resumes after.
CREATE TABLE relaygw_chat_lines (
    cursor             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    inner_event_id     TEXT NOT NULL UNIQUE CHECK (length(inner_event_id) = 64),
    party_trade_pubkey TEXT NOT NULL REFERENCES relaygw_chat_channels (party_trade_pubkey),
    inner_created_at   BIGINT NOT NULL,
    outer_event_id     TEXT NOT NULL,
    form               SMALLINT NOT NULL CHECK (form IN (1, 2)),
    content            TEXT NOT NULL,
    received_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_relaygw_chat_lines_party ON relaygw_chat_lines (party_trade_pubkey, cursor);

-- Idempotency of SendChatMessage: the signed events built for a key.
CREATE TABLE relaygw_chat_outbox (
    idempotency_key    TEXT PRIMARY KEY CHECK (length(idempotency_key) BETWEEN 1 AND 256),
    party_trade_pubkey TEXT NOT NULL,
    request_mac        TEXT NOT NULL,
    inner_event_id     TEXT NOT NULL,
    inner_created_at   BIGINT NOT NULL,
    v2_event_json      JSONB NOT NULL,
    v1_event_json      JSONB,
    attempts           INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at       TIMESTAMPTZ
);

-- +goose Down
DROP TABLE relaygw_chat_outbox;
DROP TABLE relaygw_chat_lines;
DROP TABLE relaygw_chat_channels;
DROP TABLE relaygw_dm_outbox;
DROP TABLE relaygw_mostro_info;
DROP TABLE relaygw_dispute_events;
DROP TABLE relaygw_cursors;

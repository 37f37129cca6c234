-- relaygw: dispute-chat subscriptions bounded and resumable per relay (see
-- docs/relaygw.md#chat).
--
-- relaygw_chat_cursors: per channel and relay, the created_at up to which
-- that relay's stored v2 lines were read (one cursor per channel shared by
-- all relays missed a line only a lagging relay held). It replaces
-- relaygw_chat_channels.v2_cursor.
--
-- relaygw_chat_channels.retired_at: set by RetireChatChannels when a
-- session ends or its dispute resolves; a retired channel is no longer
-- subscribed (its stored lines stay readable). Registering it again
-- (StreamChatMessages) clears it.

-- +goose Up
CREATE TABLE relaygw_chat_cursors (
    party_trade_pubkey TEXT NOT NULL REFERENCES relaygw_chat_channels (party_trade_pubkey) ON DELETE CASCADE,
    relay_url          TEXT NOT NULL,
    v2_cursor          BIGINT NOT NULL,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (party_trade_pubkey, relay_url)
);
ALTER TABLE relaygw_chat_channels ADD COLUMN retired_at TIMESTAMPTZ;
ALTER TABLE relaygw_chat_channels DROP COLUMN v2_cursor;

-- +goose Down
ALTER TABLE relaygw_chat_channels ADD COLUMN v2_cursor BIGINT;
ALTER TABLE relaygw_chat_channels DROP COLUMN retired_at;
DROP TABLE relaygw_chat_cursors;

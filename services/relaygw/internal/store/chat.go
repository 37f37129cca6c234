package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nbd-wtf/go-nostr"
)

// ChatChannel is a registered channel's public addresses.
type ChatChannel struct {
	Party        string
	V1Shared     string
	V2Conv       string
	V2Sign       string
	RegisteredAt time.Time
}

// RegisterChatChannel records a channel, or makes a retired one active
// again; inserted is false when it was already registered and active.
func (s *Store) RegisterChatChannel(ctx context.Context, c ChatChannel) (inserted bool, err error) {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_chat_channels (party_trade_pubkey, v1_shared_pubkey, v2_conv_pubkey, v2_sign_pubkey)
VALUES ($1, $2, $3, $4) ON CONFLICT (party_trade_pubkey) DO UPDATE SET retired_at = NULL
WHERE relaygw_chat_channels.retired_at IS NOT NULL`, c.Party, c.V1Shared, c.V2Conv, c.V2Sign)
	if err != nil {
		return false, fmt.Errorf("register chat channel: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ChatChannels lists every registered channel not retired.
func (s *Store) ChatChannels(ctx context.Context) ([]ChatChannel, error) {
	rows, err := s.pool.Query(ctx, `
SELECT party_trade_pubkey, v1_shared_pubkey, v2_conv_pubkey, v2_sign_pubkey, registered_at
FROM relaygw_chat_channels WHERE retired_at IS NULL ORDER BY registered_at, party_trade_pubkey`)
	if err != nil {
		return nil, fmt.Errorf("list chat channels: %w", err)
	}
	defer rows.Close()
	var out []ChatChannel
	for rows.Next() {
		var c ChatChannel
		if err := rows.Scan(&c.Party, &c.V1Shared, &c.V2Conv, &c.V2Sign, &c.RegisteredAt); err != nil {
			return nil, fmt.Errorf("list chat channels: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// ChatLine is one stored inbound line.
type ChatLine struct {
	Cursor         int64
	Party          string
	InnerID        string
	InnerCreatedAt int64
	OuterID        string
	Form           int
	Content        string
}

// InsertChatLine stores a validated line once per inner id; inserted is
// false for a line already stored (a replay, or the other form).
func (s *Store) InsertChatLine(ctx context.Context, l ChatLine) (cursor int64, inserted bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, lockChatLines); err != nil {
			return err
		}
		err := tx.QueryRow(ctx, `
INSERT INTO relaygw_chat_lines (inner_event_id, party_trade_pubkey, inner_created_at, outer_event_id, form, content)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (inner_event_id) DO NOTHING RETURNING cursor`,
			l.InnerID, l.Party, l.InnerCreatedAt, l.OuterID, l.Form, l.Content).Scan(&cursor)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		inserted = true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("store chat line %s: %w", l.InnerID, err)
	}
	return cursor, inserted, nil
}

// ChatLinesAfter returns up to limit lines of the given parties with a
// cursor greater than after, in cursor order.
func (s *Store) ChatLinesAfter(ctx context.Context, parties []string, after int64, limit int) ([]ChatLine, error) {
	rows, err := s.pool.Query(ctx, `
SELECT cursor, party_trade_pubkey, inner_event_id, inner_created_at, outer_event_id, form, content
FROM relaygw_chat_lines WHERE party_trade_pubkey = ANY($1) AND cursor > $2 ORDER BY cursor LIMIT $3`, parties, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read chat lines: %w", err)
	}
	defer rows.Close()
	var out []ChatLine
	for rows.Next() {
		var l ChatLine
		if err := rows.Scan(&l.Cursor, &l.Party, &l.InnerID, &l.InnerCreatedAt, &l.OuterID, &l.Form, &l.Content); err != nil {
			return nil, fmt.Errorf("read chat lines: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// ChatSend is one idempotency key's outbound line.
type ChatSend struct {
	Key            string
	Party          string
	RequestMAC     string
	InnerID        string
	InnerCreatedAt int64
	V2             nostr.Event
	V1             *nostr.Event
	DeliveredAt    *time.Time
}

// InsertChatSend records the events built for a key; inserted is false
// when the key already had some.
func (s *Store) InsertChatSend(ctx context.Context, c ChatSend) (inserted bool, err error) {
	v2, err := json.Marshal(c.V2)
	if err != nil {
		return false, err
	}
	var v1 []byte
	if c.V1 != nil {
		if v1, err = json.Marshal(c.V1); err != nil {
			return false, err
		}
	}
	tag, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_chat_outbox (idempotency_key, party_trade_pubkey, request_mac, inner_event_id, inner_created_at, v2_event_json, v1_event_json)
VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
		c.Key, c.Party, c.RequestMAC, c.InnerID, c.InnerCreatedAt, v2, v1)
	if err != nil {
		return false, fmt.Errorf("store chat send: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetChatSend reads a key's record.
func (s *Store) GetChatSend(ctx context.Context, key string) (ChatSend, bool, error) {
	var c ChatSend
	var v2, v1 []byte
	err := s.pool.QueryRow(ctx, `
SELECT idempotency_key, party_trade_pubkey, request_mac, inner_event_id, inner_created_at, v2_event_json, v1_event_json, delivered_at
FROM relaygw_chat_outbox WHERE idempotency_key = $1`, key).Scan(&c.Key, &c.Party, &c.RequestMAC, &c.InnerID, &c.InnerCreatedAt, &v2, &v1, &c.DeliveredAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return ChatSend{}, false, nil
	}
	if err != nil {
		return ChatSend{}, false, fmt.Errorf("read chat send: %w", err)
	}
	if err := json.Unmarshal(v2, &c.V2); err != nil {
		return ChatSend{}, false, err
	}
	if v1 != nil {
		c.V1 = &nostr.Event{}
		if err := json.Unmarshal(v1, c.V1); err != nil {
			return ChatSend{}, false, err
		}
	}
	return c, true, nil
}

// MarkChatAttempt counts a publish attempt and records the first delivery.
func (s *Store) MarkChatAttempt(ctx context.Context, key string, delivered bool) error {
	_, err := s.pool.Exec(ctx, `
UPDATE relaygw_chat_outbox SET attempts = attempts + 1,
  delivered_at = CASE WHEN $2 AND delivered_at IS NULL THEN now() ELSE delivered_at END
WHERE idempotency_key = $1`, key, delivered)
	if err != nil {
		return fmt.Errorf("record chat attempt: %w", err)
	}
	return nil
}

package store

import (
	"context"
	"fmt"
)

// ChatCursors returns the v2 cursors of the given parties on one relay
// (parties without one are absent).
func (s *Store) ChatCursors(ctx context.Context, relayURL string, parties []string) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `
SELECT party_trade_pubkey, v2_cursor FROM relaygw_chat_cursors WHERE relay_url = $1 AND party_trade_pubkey = ANY($2)`, relayURL, parties)
	if err != nil {
		return nil, fmt.Errorf("read chat cursors: %w", err)
	}
	defer rows.Close()
	out := make(map[string]int64, len(parties))
	for rows.Next() {
		var p string
		var ts int64
		if err := rows.Scan(&p, &ts); err != nil {
			return nil, fmt.Errorf("read chat cursors: %w", err)
		}
		out[p] = ts
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read chat cursors: %w", err)
	}
	return out, nil
}

// AdvanceChatCursors moves v2 cursors on one relay forward (never back),
// in one statement. A party whose channel row is gone is skipped.
func (s *Store) AdvanceChatCursors(ctx context.Context, relayURL string, cursors map[string]int64) error {
	if len(cursors) == 0 {
		return nil
	}
	parties := make([]string, 0, len(cursors))
	tss := make([]int64, 0, len(cursors))
	for p, ts := range cursors {
		parties = append(parties, p)
		tss = append(tss, ts)
	}
	_, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_chat_cursors (party_trade_pubkey, relay_url, v2_cursor)
SELECT t.party, $1, t.ts FROM unnest($2::text[], $3::bigint[]) AS t(party, ts)
WHERE EXISTS (SELECT 1 FROM relaygw_chat_channels c WHERE c.party_trade_pubkey = t.party)
ON CONFLICT (party_trade_pubkey, relay_url) DO UPDATE
  SET v2_cursor = EXCLUDED.v2_cursor, updated_at = now()
  WHERE relaygw_chat_cursors.v2_cursor < EXCLUDED.v2_cursor`, relayURL, parties, tss)
	if err != nil {
		return fmt.Errorf("advance chat cursors: %w", err)
	}
	return nil
}

// ChatLineStored reports whether the line with this inner id is stored
// (the durable dedup, checked before a line spends a rate-limit token).
func (s *Store) ChatLineStored(ctx context.Context, innerID string) (bool, error) {
	var ok bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM relaygw_chat_lines WHERE inner_event_id = $1)`, innerID).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up chat line %s: %w", innerID, err)
	}
	return ok, nil
}

// RetireChatChannels marks the given channels retired (no longer
// subscribed) and returns the parties this call retired: unknown and
// already retired channels are left as they are.
func (s *Store) RetireChatChannels(ctx context.Context, parties []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
UPDATE relaygw_chat_channels SET retired_at = now()
WHERE party_trade_pubkey = ANY($1) AND retired_at IS NULL RETURNING party_trade_pubkey`, parties)
	if err != nil {
		return nil, fmt.Errorf("retire chat channels: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var p string
		if err := rows.Scan(&p); err != nil {
			return nil, fmt.Errorf("retire chat channels: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("retire chat channels: %w", err)
	}
	return out, nil
}

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// IngestResult says what an inbound line did.
type IngestResult int

// The ingest results.
const (
	// IngestFresh: stored, the party's last-seen marker and the round
	// count moved.
	IngestFresh IngestResult = iota + 1
	// IngestStale: stored with stale = 1 for audit; nothing else changed.
	IngestStale
	// IngestDuplicate: the (session, inner event id) was already stored.
	IngestDuplicate
)

// Inbound is one party line to ingest.
type Inbound struct {
	SessionID, Party, SharedPubkey, InnerEventID, OuterEventID, Content string
	InnerCreatedAt, PersistedAt, Cursor                                 int64
}

// Ingest stores an inbound line in the caller's transaction (the session
// must be locked by it) and recomputes the round count: min(fresh buyer
// lines, fresh seller lines). A line older than the party's last seen
// inner time is stale (strictly older: two lines in one second are both
// fresh). The session's chat cursor moves to the line's in every case.
func (s *Store) Ingest(ctx context.Context, tx pgx.Tx, sess EngineSession, in Inbound) (IngestResult, int64, error) {
	last := sess.BuyerLastSeen
	if in.Party == "seller" {
		last = sess.SellerLastSeen
	}
	stale := last != nil && in.InnerCreatedAt < *last
	staleFlag := 0
	if stale {
		staleFlag = 1
	}
	if _, err := tx.Exec(ctx, `UPDATE mediation_sessions SET chat_cursor = GREATEST(chat_cursor, $2) WHERE session_id = $1`,
		in.SessionID, in.Cursor); err != nil {
		return 0, 0, fmt.Errorf("ingest: move chat cursor: %w", err)
	}
	tag, err := tx.Exec(ctx, `
INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at,
    outer_event_id, content, persisted_at, stale)
VALUES ($1, 'inbound', $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9)
ON CONFLICT (session_id, inner_event_id) DO NOTHING`,
		in.SessionID, in.Party, in.SharedPubkey, in.InnerEventID, in.InnerCreatedAt, in.OuterEventID, in.Content,
		in.PersistedAt, staleFlag)
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: insert message: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return IngestDuplicate, sess.RoundCount, nil
	}
	if stale {
		return IngestStale, sess.RoundCount, nil
	}
	col := "buyer_last_seen_inner_ts"
	if in.Party == "seller" {
		col = "seller_last_seen_inner_ts"
	}
	var rounds int64
	err = tx.QueryRow(ctx, `
UPDATE mediation_sessions SET `+col+` = $2,
    round_count = (SELECT LEAST(count(*) FILTER (WHERE party = 'buyer'), count(*) FILTER (WHERE party = 'seller'))
                   FROM mediation_messages WHERE session_id = $1 AND direction = 'inbound' AND stale = 0)
WHERE session_id = $1 RETURNING round_count`, in.SessionID, in.InnerCreatedAt).Scan(&rounds)
	if err != nil {
		return 0, 0, fmt.Errorf("ingest: recount rounds: %w", err)
	}
	return IngestFresh, rounds, nil
}

// FreshInboundCount counts the session's non-stale inbound lines.
func (s *Store) FreshInboundCount(ctx context.Context, db DB, sessionID string) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `SELECT count(*) FROM mediation_messages WHERE session_id = $1 AND direction = 'inbound' AND stale = 0`,
		sessionID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count fresh inbound of %s: %w", sessionID, err)
	}
	return n, nil
}

// MessageRow is one mediation_messages row (content included: callers
// never log it).
type MessageRow struct {
	ID                             int64
	Direction, Party, SharedPubkey string
	InnerEventID                   string
	InnerCreatedAt, PersistedAt    int64
	Content                        string
	Stale                          bool
}

// SessionMessages returns the last limit non-stale messages of a session
// (both directions), oldest first.
func (s *Store) SessionMessages(ctx context.Context, db DB, sessionID string, limit int) ([]MessageRow, error) {
	rows, err := db.Query(ctx, `
SELECT id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at, persisted_at, content, stale = 1
FROM (SELECT * FROM mediation_messages WHERE session_id = $1 AND stale = 0
      ORDER BY inner_event_created_at DESC, id DESC LIMIT $2) m
ORDER BY inner_event_created_at, id`, sessionID, limit)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MessageRow, error) {
		var m MessageRow
		return m, r.Scan(&m.ID, &m.Direction, &m.Party, &m.SharedPubkey, &m.InnerEventID, &m.InnerCreatedAt, &m.PersistedAt, &m.Content, &m.Stale)
	})
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", sessionID, err)
	}
	return out, nil
}

// OutboundPartyCount is the number of distinct parties Serbero messaged in
// a session (0..2).
func (s *Store) OutboundPartyCount(ctx context.Context, db DB, sessionID string) (int, error) {
	var n int
	err := db.QueryRow(ctx, `SELECT count(DISTINCT party) FROM mediation_messages WHERE session_id = $1 AND direction = 'outbound'`,
		sessionID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count outbound parties of %s: %w", sessionID, err)
	}
	return min(n, 2), nil
}

// OutboxItem is a party message decided and not yet confirmed sent.
type OutboxItem struct {
	ID             int64
	SessionID      string
	Party          string
	Round          int
	Body           string
	IdempotencyKey string
	CreatedAt      int64
}

// QueueOutbound writes outbox items in the caller's transaction (a retry
// with the same idempotency key is a no-op).
func (s *Store) QueueOutbound(ctx context.Context, db DB, items ...OutboxItem) error {
	for _, it := range items {
		_, err := db.Exec(ctx, `INSERT INTO mediation_outbox (session_id, party, round, body, idempotency_key, created_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (idempotency_key) DO NOTHING`,
			it.SessionID, it.Party, it.Round, it.Body, it.IdempotencyKey, it.CreatedAt)
		if err != nil {
			return fmt.Errorf("queue outbound message: %w", err)
		}
	}
	return nil
}

// UnsentOutbound lists a session's unsent outbox items, oldest first.
func (s *Store) UnsentOutbound(ctx context.Context, sessionID string) ([]OutboxItem, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, session_id, party, round, body, idempotency_key, created_at
FROM mediation_outbox WHERE session_id = $1 AND sent_at IS NULL ORDER BY id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("unsent outbound of %s: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (OutboxItem, error) {
		var it OutboxItem
		return it, r.Scan(&it.ID, &it.SessionID, &it.Party, &it.Round, &it.Body, &it.IdempotencyKey, &it.CreatedAt)
	})
	if err != nil {
		return nil, fmt.Errorf("unsent outbound of %s: %w", sessionID, err)
	}
	return out, nil
}

// Outbound is a sent party message to record.
type Outbound struct {
	Item                       OutboxItem
	SharedPubkey, InnerEventID string
	OuterEventID               string
	InnerCreatedAt, SentAt     int64
	PromptBundleID, PolicyHash string
}

// RecordOutbound marks an outbox item sent and stores the message row, in
// the caller's transaction (false when it was already recorded).
func (s *Store) RecordOutbound(ctx context.Context, tx pgx.Tx, o Outbound) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE mediation_outbox SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL`, o.Item.ID, o.SentAt)
	if err != nil {
		return false, fmt.Errorf("record outbound: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	_, err = tx.Exec(ctx, `
INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at,
    outer_event_id, content, prompt_bundle_id, policy_hash, persisted_at, stale)
VALUES ($1, 'outbound', $2, $3, $4, $5, NULLIF($6, ''), $7, $8, $9, $10, 0)
ON CONFLICT (session_id, inner_event_id) DO NOTHING`,
		o.Item.SessionID, o.Item.Party, o.SharedPubkey, o.InnerEventID, o.InnerCreatedAt, o.OuterEventID, o.Item.Body,
		o.PromptBundleID, o.PolicyHash, o.SentAt)
	if err != nil {
		return false, fmt.Errorf("record outbound: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE mediation_sessions SET first_outbound_at = COALESCE(first_outbound_at, $2) WHERE session_id = $1`,
		o.Item.SessionID, o.SentAt); err != nil {
		return false, fmt.Errorf("record outbound: %w", err)
	}
	return true, nil
}

// Summary is one mediation_summaries row.
type Summary struct {
	SessionID, DisputeID, Classification string
	Confidence                           float64
	SuggestedNextStep, SummaryText       string
	PromptBundleID, PolicyHash           string
	RationaleID                          string
	GeneratedAt                          int64
}

// InsertSummary stores a summary in the caller's transaction.
func (s *Store) InsertSummary(ctx context.Context, db DB, sm Summary) error {
	_, err := db.Exec(ctx, `INSERT INTO mediation_summaries (session_id, dispute_id, classification, confidence,
    suggested_next_step, summary_text, prompt_bundle_id, policy_hash, rationale_id, generated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, ''), $10)`,
		sm.SessionID, sm.DisputeID, sm.Classification, sm.Confidence, sm.SuggestedNextStep, sm.SummaryText,
		sm.PromptBundleID, sm.PolicyHash, sm.RationaleID, sm.GeneratedAt)
	if err != nil {
		return fmt.Errorf("insert summary: %w", err)
	}
	return nil
}

// LatestSummary returns the session's newest summary (ok false without).
func (s *Store) LatestSummary(ctx context.Context, db DB, sessionID string) (Summary, bool, error) {
	var sm Summary
	err := db.QueryRow(ctx, `SELECT session_id, dispute_id, classification, confidence, suggested_next_step, summary_text,
    prompt_bundle_id, policy_hash, COALESCE(rationale_id, ''), generated_at
FROM mediation_summaries WHERE session_id = $1 ORDER BY id DESC LIMIT 1`, sessionID).Scan(&sm.SessionID, &sm.DisputeID,
		&sm.Classification, &sm.Confidence, &sm.SuggestedNextStep, &sm.SummaryText, &sm.PromptBundleID, &sm.PolicyHash,
		&sm.RationaleID, &sm.GeneratedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Summary{}, false, nil
	}
	if err != nil {
		return Summary{}, false, fmt.Errorf("latest summary of %s: %w", sessionID, err)
	}
	return sm, true, nil
}

// InTx runs f in a transaction on the store's pool.
func (s *Store) InTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, f)
}

package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Quarantined is one intake_quarantine row: a dispute event whose
// application failed for good, set aside so the stream moves on.
type Quarantined struct {
	EventID string
	// Cursor is relaygw's position of the event (the last one seen).
	Cursor int64
	// DisputeID is the event's d tag as given (cut by the caller); "" when
	// the event had none.
	DisputeID string
	// Class says what kind of failure it was; Reason is the error text.
	Class, Reason string
	// FirstSeen and LastSeen bound the attempts; SeenCount counts them
	// (a replay of the stream meets the event again).
	FirstSeen, LastSeen time.Time
	SeenCount           int64
}

// Quarantine records q (EventID, Cursor, DisputeID, Class, Reason), or, for
// an event already there, bumps its count and last-seen time and keeps the
// latest cursor, class and reason. It returns the row as stored.
func (s *Store) Quarantine(ctx context.Context, q Quarantined) (Quarantined, error) {
	var dispute *string
	if q.DisputeID != "" {
		dispute = &q.DisputeID
	}
	row := s.pool.QueryRow(ctx, `INSERT INTO intake_quarantine (event_id, cursor, dispute_id, class, reason)
		VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (event_id) DO UPDATE SET cursor = EXCLUDED.cursor, dispute_id = EXCLUDED.dispute_id,
			class = EXCLUDED.class, reason = EXCLUDED.reason, last_seen_at = now(),
			seen_count = intake_quarantine.seen_count + 1
		RETURNING `+quarantineCols, q.EventID, q.Cursor, dispute, q.Class, q.Reason)
	out, err := scanQuarantined(row)
	if err != nil {
		return Quarantined{}, fmt.Errorf("quarantine event %s: %w", q.EventID, err)
	}
	return out, nil
}

const quarantineCols = `event_id, cursor, COALESCE(dispute_id, ''), class, reason, first_seen_at, last_seen_at, seen_count`

func scanQuarantined(r pgx.Row) (Quarantined, error) {
	var q Quarantined
	err := r.Scan(&q.EventID, &q.Cursor, &q.DisputeID, &q.Class, &q.Reason, &q.FirstSeen, &q.LastSeen, &q.SeenCount)
	return q, err
}

// QuarantineKey is a position in the quarantine listing (newest last-seen
// first).
type QuarantineKey struct {
	LastSeen time.Time `json:"last_seen"`
	EventID  string    `json:"event_id"`
}

// ListQuarantine lists quarantined events, most recently seen first, at
// most limit, after the given position (nil: from the start). It returns
// the key of the next page, nil on the last page.
func (s *Store) ListQuarantine(ctx context.Context, limit int, after *QuarantineKey) ([]Quarantined, *QuarantineKey, error) {
	var at *time.Time
	var id *string
	if after != nil {
		at, id = &after.LastSeen, &after.EventID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+quarantineCols+` FROM intake_quarantine
		WHERE $1::timestamptz IS NULL OR (last_seen_at, event_id) < ($1, $2::text)
		ORDER BY last_seen_at DESC, event_id DESC LIMIT $3`, at, id, limit+1)
	if err != nil {
		return nil, nil, fmt.Errorf("list quarantine: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Quarantined, error) { return scanQuarantined(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("list quarantine: %w", err)
	}
	if len(list) <= limit {
		return list, nil, nil
	}
	list = list[:limit]
	last := list[len(list)-1]
	return list, &QuarantineKey{LastSeen: last.LastSeen, EventID: last.EventID}, nil
}

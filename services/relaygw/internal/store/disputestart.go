package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// DisputeStart is when the deployment first started watching dispute
// events (table relaygw_dispute_start).
type DisputeStart struct {
	// StartedAt is the first start's Unix time; 0 for a database that had
	// cursors before the record existed.
	StartedAt int64
	// BackfillSeconds is the backfill window the first start used.
	BackfillSeconds int64
}

// GetDisputeStart reads the record; ok is false before the first start.
func (s *Store) GetDisputeStart(ctx context.Context) (DisputeStart, bool, error) {
	var d DisputeStart
	err := s.pool.QueryRow(ctx, `SELECT started_at, backfill_seconds FROM relaygw_dispute_start`).Scan(&d.StartedAt, &d.BackfillSeconds)
	if errors.Is(err, pgx.ErrNoRows) {
		return DisputeStart{}, false, nil
	}
	if err != nil {
		return DisputeStart{}, false, fmt.Errorf("read the dispute start: %w", err)
	}
	return d, true, nil
}

// RecordDisputeStart writes the record unless one exists and returns the
// one that holds (first writer wins); created reports whether this call
// wrote it.
func (s *Store) RecordDisputeStart(ctx context.Context, d DisputeStart) (got DisputeStart, created bool, err error) {
	tag, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_dispute_start (started_at, backfill_seconds) VALUES ($1, $2)
ON CONFLICT (singleton) DO NOTHING`, d.StartedAt, d.BackfillSeconds)
	if err != nil {
		return DisputeStart{}, false, fmt.Errorf("record the dispute start: %w", err)
	}
	got, ok, err := s.GetDisputeStart(ctx)
	if err != nil {
		return DisputeStart{}, false, err
	}
	if !ok {
		return DisputeStart{}, false, errors.New("record the dispute start: the record vanished")
	}
	return got, tag.RowsAffected() == 1, nil
}

// OldestCursor is the oldest stored cursor of a subscription over all
// relays; ok is false when no relay has one.
func (s *Store) OldestCursor(ctx context.Context, key string) (ts int64, ok bool, err error) {
	var v *int64
	if err := s.pool.QueryRow(ctx, `SELECT min(last_created_at) FROM relaygw_cursors WHERE sub_key = $1`, key).Scan(&v); err != nil {
		return 0, false, fmt.Errorf("read the oldest cursor of %s: %w", key, err)
	}
	if v == nil {
		return 0, false, nil
	}
	return *v, true, nil
}

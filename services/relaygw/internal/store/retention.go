package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// lockRetention serialises the retention job across replicas: a batch runs
// only while it holds this transaction-level advisory lock, and a replica
// that cannot take it leaves the run to the one that has it.
const lockRetention = 0x52475752 // "RGWR"

// StreamDisputes names the dispute event stream in relaygw_stream_consumers.
const StreamDisputes = "disputes"

// RecordStreamConsumer records that consumer resumed stream after cursor
// after (now).
func (s *Store) RecordStreamConsumer(ctx context.Context, stream, consumer string, after int64) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO relaygw_stream_consumers (stream, consumer, after_cursor) VALUES ($1, $2, $3)
ON CONFLICT (stream, consumer) DO UPDATE SET after_cursor = EXCLUDED.after_cursor, seen_at = now()`, stream, consumer, after)
	if err != nil {
		return fmt.Errorf("record %s stream consumer: %w", stream, err)
	}
	return nil
}

// StreamFloor returns the smallest cursor a consumer of stream seen since
// seenSince resumed after; ok is false when there is none.
func (s *Store) StreamFloor(ctx context.Context, stream string, seenSince time.Time) (floor int64, ok bool, err error) {
	var f *int64
	err = s.pool.QueryRow(ctx, `SELECT min(after_cursor) FROM relaygw_stream_consumers WHERE stream = $1 AND seen_at >= $2`, stream, seenSince).Scan(&f)
	if err != nil {
		return 0, false, fmt.Errorf("read %s stream floor: %w", stream, err)
	}
	if f == nil {
		return 0, false, nil
	}
	return *f, true, nil
}

// prune runs one delete under the retention lock; locked is false when
// another replica holds it (nothing was deleted).
func (s *Store) prune(ctx context.Context, what, sql string, args ...any) (deleted int64, locked bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, lockRetention).Scan(&locked); err != nil || !locked {
			return err
		}
		tag, err := tx.Exec(ctx, sql, args...)
		deleted = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, false, fmt.Errorf("prune %s: %w", what, err)
	}
	return deleted, locked, nil
}

// PruneDisputeEvents deletes up to limit dispute events received before
// receivedBefore, created (their own created_at) before createdBefore and
// with a cursor of at most maxCursor, oldest first.
func (s *Store) PruneDisputeEvents(ctx context.Context, receivedBefore time.Time, createdBefore, maxCursor int64, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_dispute_events", `
DELETE FROM relaygw_dispute_events WHERE cursor IN (
  SELECT cursor FROM relaygw_dispute_events
  WHERE cursor <= $3 AND received_at < $1 AND created_at < $2
  ORDER BY cursor LIMIT $4 FOR UPDATE SKIP LOCKED)`, receivedBefore, createdBefore, maxCursor, limit)
}

// PruneChatLines deletes up to limit chat lines received before
// receivedBefore whose inner created_at is before createdBefore.
func (s *Store) PruneChatLines(ctx context.Context, receivedBefore time.Time, createdBefore int64, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_chat_lines", `
DELETE FROM relaygw_chat_lines WHERE cursor IN (
  SELECT cursor FROM relaygw_chat_lines
  WHERE received_at < $1 AND inner_created_at < $2
  ORDER BY cursor LIMIT $3 FOR UPDATE SKIP LOCKED)`, receivedBefore, createdBefore, limit)
}

// PruneDMOutbox deletes up to limit DM idempotency records created before
// createdBefore.
func (s *Store) PruneDMOutbox(ctx context.Context, createdBefore time.Time, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_dm_outbox", `
DELETE FROM relaygw_dm_outbox WHERE idempotency_key IN (
  SELECT idempotency_key FROM relaygw_dm_outbox WHERE created_at < $1
  ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, createdBefore, limit)
}

// PruneChatOutbox deletes up to limit chat idempotency records created
// before createdBefore.
func (s *Store) PruneChatOutbox(ctx context.Context, createdBefore time.Time, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_chat_outbox", `
DELETE FROM relaygw_chat_outbox WHERE idempotency_key IN (
  SELECT idempotency_key FROM relaygw_chat_outbox WHERE created_at < $1
  ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)`, createdBefore, limit)
}

// PruneCursors deletes up to limit subscription cursors not updated since
// updatedBefore on relays that are not in keep (relays removed from the
// configuration).
func (s *Store) PruneCursors(ctx context.Context, updatedBefore time.Time, keep []string, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_cursors", `
DELETE FROM relaygw_cursors WHERE (sub_key, relay_url) IN (
  SELECT sub_key, relay_url FROM relaygw_cursors
  WHERE updated_at < $1 AND NOT (relay_url = ANY($2))
  LIMIT $3 FOR UPDATE SKIP LOCKED)`, updatedBefore, keep, limit)
}

// PruneStreamConsumers deletes consumers not seen since seenBefore (they
// no longer protect anything).
func (s *Store) PruneStreamConsumers(ctx context.Context, seenBefore time.Time, limit int) (int64, bool, error) {
	return s.prune(ctx, "relaygw_stream_consumers", `
DELETE FROM relaygw_stream_consumers WHERE (stream, consumer) IN (
  SELECT stream, consumer FROM relaygw_stream_consumers WHERE seen_at < $1
  LIMIT $2 FOR UPDATE SKIP LOCKED)`, seenBefore, limit)
}

// Package store is intakesvc's Postgres access, SQL only: the reference
// daemon's disputes and dispute_state_transitions tables, the durable
// intake cursor, the DM outbox (intake_notification_jobs), the change feed
// (dispute_changes), the quarantine of events that can never be applied
// (intake_quarantine) and the retention bookkeeping. Notification rows go
// through pkg/notiflog. The store decides nothing: what a revision does
// comes in as a Plan from the caller's Decider, the DMs of a re-notification
// batch from a Composer; it only keeps the table rules that must hold in
// the statement that writes (a lifecycle move is legal, a delivered initial
// DM moves new -> notified). See docs/intake.md.
//
// Transaction boundaries:
//   - ApplyRevision: per-dispute advisory lock, the dispute row, its
//     lifecycle transition and history row, the DMs of the plan (outbox
//     rows, a new dispute's leased to the caller), the change feed rows and
//     the cursor advance all commit together or not at all.
//   - CompleteDelivered (many DMs at once) and CompleteJob (one failed
//     attempt): the notifications row, the outbox row's outcome, and
//     new -> notified / last_notified_at commit together.
//   - ClaimDue: re-notification batches are claimed with FOR NO KEY UPDATE
//     SKIP LOCKED and stamped (notify_claimed_at) in the claiming
//     transaction, so any number of replicas re-notify a dispute once per
//     period.
//
// Lock order, everywhere: per-dispute advisory lock, outbox rows being
// completed, disputes rows (several: in dispute_id order), intake_cursor
// row, the change feed lock. Dispute rows are locked FOR NO KEY UPDATE, so
// inserts referencing them do not wait. The feed lock is taken last and
// held to commit, so dispute_changes ids become visible in id order; the
// hot transactions send it with COMMIT in one round trip (inTxTail).
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// StreamDisputeEvents is intake_cursor's row for relaygw's dispute events.
const StreamDisputeEvents = "dispute_events"

// ChangesChannel is the LISTEN/NOTIFY channel poked when dispute_changes
// rows commit.
const ChangesChannel = "serbero_intakesvc_changes"

// feedLockKey is the advisory lock serialising dispute_changes writers.
const feedLockKey int64 = 0x5e7be7000001

// ErrNotFound is returned for a dispute that does not exist.
var ErrNotFound = errors.New("dispute not found")

// Store is intakesvc's database access.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Dispute is one disputes row. JSON names are the column names (the change
// feed stores snapshots as JSON).
type Dispute struct {
	DisputeID       string          `json:"dispute_id"`
	EventID         string          `json:"event_id"`
	MostroPubkey    string          `json:"mostro_pubkey"`
	InitiatorRole   string          `json:"initiator_role"`
	DisputeStatus   string          `json:"dispute_status"`
	EventTimestamp  int64           `json:"event_timestamp"`
	DetectedAt      int64           `json:"detected_at"`
	LifecycleState  lifecycle.State `json:"lifecycle_state"`
	AssignedSolver  *string         `json:"assigned_solver"`
	LastNotifiedAt  *int64          `json:"last_notified_at"`
	LastStateChange *int64          `json:"last_state_change"`
	OpenedAt        *int64          `json:"opened_at"`
	NewestEventID   *string         `json:"newest_event_id"`
	NewestCreatedAt *int64          `json:"newest_created_at"`
	NotifyPeriod    int64           `json:"notify_period"`
	NotifyClaimedAt *int64          `json:"notify_claimed_at"`
	TakeIntentUntil *int64          `json:"take_intent_until"`
}

const disputeCols = `dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, event_timestamp,
	detected_at, lifecycle_state, assigned_solver, last_notified_at, last_state_change, opened_at,
	newest_event_id, newest_created_at, notify_period, notify_claimed_at, take_intent_until`

func scanDispute(row pgx.Row) (Dispute, error) {
	var d Dispute
	var state string
	err := row.Scan(&d.DisputeID, &d.EventID, &d.MostroPubkey, &d.InitiatorRole, &d.DisputeStatus,
		&d.EventTimestamp, &d.DetectedAt, &state, &d.AssignedSolver, &d.LastNotifiedAt, &d.LastStateChange,
		&d.OpenedAt, &d.NewestEventID, &d.NewestCreatedAt, &d.NotifyPeriod, &d.NotifyClaimedAt, &d.TakeIntentUntil)
	d.LifecycleState = lifecycle.State(state)
	return d, err
}

// Transition is one dispute_state_transitions row.
type Transition struct {
	ID             int64
	DisputeID      string
	From           lifecycle.State // "" when NULL
	To             lifecycle.State
	TransitionedAt int64
	Trigger        string
}

// Notification is one notifications row.
type Notification struct {
	ID           int64
	DisputeID    string
	SolverPubkey string
	SentAt       int64
	Status       string
	ErrorMessage string
	NotifType    string
}

// Change kinds of the feed.
const (
	ChangeDetected     = "detected"
	ChangeTransitioned = "transitioned"
	ChangeUpdated      = "updated"
)

// Change is one dispute_changes row.
type Change struct {
	ID         int64
	DisputeID  string
	Kind       string
	Dispute    Dispute
	Transition *Transition
	ChangedAt  time.Time
}

// pendingChange is a feed row to write at the end of a transaction.
type pendingChange struct {
	kind       string
	transition int64 // 0 for none
	snapshot   Dispute
	// raw, when set, is the snapshot already encoded (to_jsonb of the row)
	// and snapshot only names the dispute.
	raw []byte
}

// writeChanges takes the feed lock and writes the changes (last thing
// before commit).
func writeChanges(ctx context.Context, tx pgx.Tx, changes []pendingChange) error {
	return finish(ctx, tx, 0, changes)
}

// finish is the tail of a transaction, in one round trip: advance the
// intake cursor to cursor (when > 0), then take the feed lock and write the
// changes with their NOTIFY.
func finish(ctx context.Context, tx pgx.Tx, cursor int64, changes []pendingChange) error {
	b, err := tailBatch(cursor, changes)
	if err != nil {
		return err
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("advance cursor and write changes: %w", err)
	}
	return nil
}

// tailBatch queues a transaction's tail: the cursor advance (cursor > 0),
// then the feed lock, the change rows and their NOTIFY.
func tailBatch(cursor int64, changes []pendingChange) (*pgx.Batch, error) {
	b := &pgx.Batch{}
	if cursor > 0 {
		b.Queue(`INSERT INTO intake_cursor (stream, cursor) VALUES ($1, $2)
			ON CONFLICT (stream) DO UPDATE SET cursor = GREATEST(intake_cursor.cursor, EXCLUDED.cursor), updated_at = now()`,
			StreamDisputeEvents, cursor)
	}
	if len(changes) > 0 {
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, feedLockKey)
		ids, kinds, snaps := make([]string, len(changes)), make([]string, len(changes)), make([]string, len(changes))
		tids := make([]*int64, len(changes))
		for i, c := range changes {
			snap := c.raw
			if snap == nil {
				var err error
				if snap, err = json.Marshal(c.snapshot); err != nil {
					return nil, fmt.Errorf("encode snapshot: %w", err)
				}
			}
			if c.transition != 0 {
				tids[i] = &c.transition
			}
			ids[i], kinds[i], snaps[i] = c.snapshot.DisputeID, c.kind, string(snap)
		}
		// One statement for every row, in order (ids follow it).
		b.Queue(`INSERT INTO dispute_changes (dispute_id, kind, transition_id, snapshot)
			SELECT c.dispute_id, c.kind, c.transition_id, c.snapshot::jsonb
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) WITH ORDINALITY AS c(dispute_id, kind, transition_id, snapshot, ord)
			ORDER BY c.ord`, ids, kinds, tids, snaps)
		b.Queue(`SELECT pg_notify($1, '')`, ChangesChannel)
	}
	return b, nil
}

// inTxTail runs fn in a transaction and sends the tail fn returns (cursor
// and feed rows, see tailBatch) together with COMMIT in one round trip: the
// feed lock is then held only while the server runs the tail and commits,
// never across a client round trip, and the transaction saves one.
func (s *Store) inTxTail(ctx context.Context, fn func(pgx.Tx) (cursor int64, changes []pendingChange, err error)) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection: %w", err)
	}
	defer conn.Release()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	cursor, changes, err := fn(tx)
	if err == nil {
		err = commitWith(ctx, tx, cursor, changes)
	}
	if err != nil {
		rollback(ctx, tx)
	}
	return err
}

// commitWith sends the tail and COMMIT in one batch. On success the
// transaction is over (tx must not be used again); on error the caller
// rolls back (a failed statement leaves it aborted, not ended).
func commitWith(ctx context.Context, tx pgx.Tx, cursor int64, changes []pendingChange) error {
	b, err := tailBatch(cursor, changes)
	if err != nil {
		return err
	}
	b.Queue(`COMMIT`)
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("write changes and commit: %w", err)
	}
	return nil
}

// rollback ends a failed transaction (bounded, even when ctx ended; a
// connection that cannot roll back is closed and dropped by the pool).
func rollback(ctx context.Context, tx pgx.Tx) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(rctx)
}

// transition moves d to `to` (validated by lifecycle.Check: the one place),
// records the history row, and returns its id. d is updated in place.
func transition(ctx context.Context, tx pgx.Tx, d *Dispute, to lifecycle.State, trigger string, now int64) (int64, error) {
	if err := lifecycle.Check(d.LifecycleState, to); err != nil {
		return 0, err
	}
	if _, err := tx.Exec(ctx,
		`UPDATE disputes SET lifecycle_state = $2, last_state_change = $3 WHERE dispute_id = $1`,
		d.DisputeID, string(to), now); err != nil {
		return 0, fmt.Errorf("update lifecycle state: %w", err)
	}
	var id int64
	if err := tx.QueryRow(ctx,
		`INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at, trigger)
		 VALUES ($1, $2, $3, $4, $5) RETURNING id`,
		d.DisputeID, string(d.LifecycleState), string(to), now, trigger).Scan(&id); err != nil {
		return 0, fmt.Errorf("insert transition: %w", err)
	}
	d.LifecycleState = to
	d.LastStateChange = &now
	return id, nil
}

// lockDispute reads the dispute row for update (nil when absent). The lock
// is FOR NO KEY UPDATE (the key never changes): rows referencing the
// dispute (notifications, jobs, history) can still be inserted meanwhile.
func lockDispute(ctx context.Context, tx pgx.Tx, disputeID string) (*Dispute, error) {
	d, err := scanDispute(tx.QueryRow(ctx, `SELECT `+disputeCols+` FROM disputes WHERE dispute_id = $1 FOR NO KEY UPDATE`, disputeID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read dispute: %w", err)
	}
	return &d, nil
}

// inTx runs fn in a transaction.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, s.pool, fn)
}

// Cursor returns the durable position in relaygw's dispute event stream.
func (s *Store) Cursor(ctx context.Context) (int64, error) {
	var c int64
	err := s.pool.QueryRow(ctx, `SELECT cursor FROM intake_cursor WHERE stream = $1`, StreamDisputeEvents).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read intake cursor: %w", err)
	}
	return c, nil
}

// AdvanceCursor moves the cursor forward to c (never backward), for events
// that persist nothing (rejected ones).
func (s *Store) AdvanceCursor(ctx context.Context, c int64) error {
	return advanceCursor(ctx, s.pool, c)
}

// dbtx is a pool or a transaction.
type dbtx interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func advanceCursor(ctx context.Context, db dbtx, c int64) error {
	_, err := db.Exec(ctx, `INSERT INTO intake_cursor (stream, cursor) VALUES ($1, $2)
		ON CONFLICT (stream) DO UPDATE SET cursor = GREATEST(intake_cursor.cursor, EXCLUDED.cursor), updated_at = now()`,
		StreamDisputeEvents, c)
	if err != nil {
		return fmt.Errorf("advance intake cursor: %w", err)
	}
	return nil
}

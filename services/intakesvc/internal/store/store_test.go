package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

var t0 = time.Unix(1_800_000_000, 0)

func rev(d, id string, at int64, s string, cursor int64) event.Revision {
	return event.Revision{Cursor: cursor, EventID: id, Pubkey: "mostro", CreatedAt: at, DisputeID: d,
		Status: lifecycle.Status(s), Initiator: "buyer", InitiatorRaw: "buyer"}
}

func count(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func setup(t *testing.T) (*store.Store, *pgdbtest.DB) {
	t.Helper()
	db := pgdbtest.NewDB(t)
	return store.New(db.Pool), db
}

func TestSchemaKeepsReferenceColumns(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	want := map[string][]string{
		"disputes": {"dispute_id", "event_id", "mostro_pubkey", "initiator_role", "dispute_status", "event_timestamp",
			"detected_at", "lifecycle_state", "assigned_solver", "last_notified_at", "last_state_change"},
		"notifications":             {"id", "dispute_id", "solver_pubkey", "sent_at", "status", "error_message", "notif_type"},
		"dispute_state_transitions": {"id", "dispute_id", "from_state", "to_state", "transitioned_at", "trigger"},
	}
	for table, cols := range want {
		rows, err := db.Pool.Query(ctx, `SELECT column_name FROM information_schema.columns WHERE table_name = $1`, table)
		require.NoError(t, err)
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		require.Subset(t, got, cols, table)
	}
	for _, idx := range []string{"idx_disputes_lifecycle_state", "idx_notifications_dispute_id", "idx_state_transitions_dispute_id"} {
		require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM pg_indexes WHERE indexname = $1`, idx), idx)
	}
	// notif_type defaults to initial; the FK rejects an unknown dispute.
	_, err := db.Pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
		VALUES ('d', 'e', 'm', 'buyer', 1, 2)`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status) VALUES ('d', 's', 3, 'sent')`)
	require.NoError(t, err)
	require.Equal(t, 1, count(t, db.Pool, `SELECT count(*) FROM notifications WHERE notif_type = 'initial'`))
	_, err = db.Pool.Exec(ctx, `INSERT INTO notifications (dispute_id, solver_pubkey, sent_at, status) VALUES ('nope', 's', 3, 'sent')`)
	require.ErrorContains(t, err, "foreign key")
}

// TestSchemaLifecycleMatchesGo proves the schema's transition table is the
// Go one, and that the trigger refuses illegal moves (with the operator
// override).
func TestSchemaLifecycleMatchesGo(t *testing.T) {
	t.Parallel()
	_, db := setup(t)
	ctx := context.Background()
	for _, from := range lifecycle.States {
		for _, to := range lifecycle.States {
			var ok bool
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT serbero_lifecycle_allowed($1, $2)`, string(from), string(to)).Scan(&ok))
			require.Equal(t, lifecycle.CanTransition(from, to), ok, "%s -> %s", from, to)
		}
	}
	_, err := db.Pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
		VALUES ('d', 'e', 'm', 'buyer', 1, 2, 'notified')`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'new' WHERE dispute_id = 'd'`)
	require.ErrorContains(t, err, "invalid state transition: notified -> new")
	_, err = db.Pool.Exec(ctx, `INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at) VALUES ('d', 'resolved', 'new', 1)`)
	require.ErrorContains(t, err, "dispute_state_transitions_legal")
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'resolved' WHERE dispute_id = 'd'`)
	require.NoError(t, err)
	// Operator correction, explicitly allowed.
	tx, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL serbero.lifecycle_override = 'on'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'notified' WHERE dispute_id = 'd'`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))
	// The override does not leak to the next transaction.
	_, err = db.Pool.Exec(ctx, `UPDATE disputes SET lifecycle_state = 'new' WHERE dispute_id = 'd'`)
	require.ErrorContains(t, err, "invalid state transition")
}

package notiflog_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/notiflog"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

func seedDispute(t *testing.T, pool *pgxpool.Pool, id string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1)`, id)
	require.NoError(t, err)
}

func TestRecordAndRead(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seedDispute(t, db.Pool, "d1")
	seedDispute(t, db.Pool, "d2")

	first, err := notiflog.Record(ctx, db.Pool, notiflog.Entry{DisputeID: "d1", SolverPubkey: "npub-a", SentAt: 100,
		Status: notiflog.StatusSent, Type: notiflog.TypeInitial})
	require.NoError(t, err)

	batch := []notiflog.Entry{
		{DisputeID: "d1", SolverPubkey: "a", SentAt: 200, Status: notiflog.StatusSent, Type: notiflog.TypeEscalationHandoff},
		{DisputeID: "d2", SolverPubkey: "b", SentAt: 200, Status: notiflog.StatusFailed, Error: "notification error: gift-wrap send failed: x", Type: notiflog.TypeEscalationHandoff},
		{DisputeID: "d1", SolverPubkey: "c", SentAt: 200, Status: notiflog.StatusFailed, Type: notiflog.TypeMediationSummary},
	}
	ids, err := notiflog.RecordAll(ctx, db.Pool, batch)
	require.NoError(t, err)
	require.Len(t, ids, 3)
	require.Less(t, first, ids[0])
	require.Less(t, ids[0], ids[1], "ids grow in entries' order")
	require.Less(t, ids[1], ids[2])

	got, err := notiflog.ByDispute(ctx, db.Pool, "d1")
	require.NoError(t, err)
	require.Equal(t, []notiflog.Notification{
		{ID: first, DisputeID: "d1", SolverPubkey: "npub-a", SentAt: 100, Status: notiflog.StatusSent, Type: notiflog.TypeInitial},
		{ID: ids[0], DisputeID: "d1", SolverPubkey: "a", SentAt: 200, Status: notiflog.StatusSent, Type: notiflog.TypeEscalationHandoff},
		{ID: ids[2], DisputeID: "d1", SolverPubkey: "c", SentAt: 200, Status: notiflog.StatusFailed, Type: notiflog.TypeMediationSummary},
	}, got)
	got, err = notiflog.ByDispute(ctx, db.Pool, "d2", notiflog.TypeEscalationHandoff)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, "notification error: gift-wrap send failed: x", got[0].Error)

	// A failed row with an empty error text keeps '' (not NULL); a sent row
	// has NULL.
	var nulls, empties int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE error_message IS NULL), count(*) FILTER (WHERE error_message = '') FROM notifications`).Scan(&nulls, &empties))
	require.Equal(t, 2, nulls)
	require.Equal(t, 1, empties)

	none, err := notiflog.ByDispute(ctx, db.Pool, "d1", notiflog.TypeAssignment)
	require.NoError(t, err)
	require.Empty(t, none)
}

func TestReservedIDs(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seedDispute(t, db.Pool, "d1")

	res, err := notiflog.ReserveIDs(ctx, db.Pool, 2)
	require.NoError(t, err)
	require.Len(t, res, 2)
	ids, err := notiflog.RecordAll(ctx, db.Pool, []notiflog.Entry{
		{ID: res[1], DisputeID: "d1", SolverPubkey: "a", SentAt: 1, Status: notiflog.StatusSent, Type: notiflog.TypeInitial},
		{DisputeID: "d1", SolverPubkey: "b", SentAt: 1, Status: notiflog.StatusSent, Type: notiflog.TypeInitial},
	})
	require.NoError(t, err)
	require.Equal(t, res[1], ids[0], "the reserved id is used")
	require.Greater(t, ids[1], res[1], "a drawn id never collides with a reserved one")
	empty, err := notiflog.ReserveIDs(ctx, db.Pool, 0)
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestRecordRefusesBadEntriesAndWritesNothing(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	ctx := t.Context()
	seedDispute(t, db.Pool, "d1")
	good := notiflog.Entry{DisputeID: "d1", SolverPubkey: "a", SentAt: 1, Status: notiflog.StatusSent, Type: notiflog.TypeInitial}

	tests := []struct {
		name string
		e    notiflog.Entry
		want string
	}{
		{"no dispute", notiflog.Entry{SentAt: 1, Status: notiflog.StatusSent, Type: notiflog.TypeInitial}, "dispute_id is required"},
		{"no time", notiflog.Entry{DisputeID: "d1", Status: notiflog.StatusSent, Type: notiflog.TypeInitial}, "sent_at is required"},
		{"unknown type", notiflog.Entry{DisputeID: "d1", SentAt: 1, Status: notiflog.StatusSent, Type: "initial "}, "unknown notif_type"},
		{"unknown status", notiflog.Entry{DisputeID: "d1", SentAt: 1, Status: "ok", Type: notiflog.TypeInitial}, "unknown status"},
		{"sent with an error", notiflog.Entry{DisputeID: "d1", SentAt: 1, Status: notiflog.StatusSent, Error: "x", Type: notiflog.TypeInitial}, "has no error"},
	}
	for _, tt := range tests {
		_, err := notiflog.RecordAll(ctx, db.Pool, []notiflog.Entry{good, tt.e})
		require.ErrorIs(t, err, notiflog.ErrInvalidEntry, tt.name)
		require.ErrorContains(t, err, tt.want, tt.name)
		require.ErrorContains(t, err, "notification 2 of 2", tt.name)
	}

	// The foreign key refuses an unknown dispute; the whole batch is refused.
	bad := good
	bad.DisputeID = "nope"
	_, err := notiflog.RecordAll(ctx, db.Pool, []notiflog.Entry{good, bad})
	require.ErrorContains(t, err, "record notifications")

	// Inside the caller's transaction, a rollback takes the rows with it.
	boom := errors.New("boom")
	err = pgx.BeginFunc(ctx, db.Pool, func(tx pgx.Tx) error {
		if _, err := notiflog.Record(ctx, tx, good); err != nil {
			return err
		}
		return boom
	})
	require.ErrorIs(t, err, boom)

	got, err := notiflog.ByDispute(ctx, db.Pool, "d1")
	require.NoError(t, err)
	require.Empty(t, got)

	ids, err := notiflog.RecordAll(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.Empty(t, ids)
}

package pgdb_test

import (
	"context"
	"io/fs"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/schema"
)

func TestMigrateUp(t *testing.T) {
	t.Parallel()

	t.Run("AppliesAllThenNothing", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewEmptyDB(t)
		ctx := t.Context()

		require.ErrorIs(t, pgdb.ReadyCheck(db.Pool)(ctx), pgdb.ErrSchemaBehind, "an empty database is not ready")

		applied, err := pgdb.MigrateUp(ctx, db.Pool, nil)
		require.NoError(t, err)
		require.Len(t, applied, migrationFiles(t))

		again, err := pgdb.MigrateUp(ctx, db.Pool, nil)
		require.NoError(t, err)
		require.Empty(t, again, "a second run applies nothing")

		v, err := pgdb.CurrentVersion(ctx, db.Pool)
		require.NoError(t, err)
		require.Equal(t, schema.Version(), v)
		require.NoError(t, pgdb.ReadyCheck(db.Pool)(ctx))

		st, err := pgdb.Status(ctx, db.Pool)
		require.NoError(t, err)
		for _, s := range st {
			require.False(t, s.AppliedAt.IsZero(), "migration %d applied", s.Version)
		}

		// The reference tables exist with their columns.
		for _, q := range []string{
			`SELECT dispute_id, event_id, mostro_pubkey, initiator_role, dispute_status, event_timestamp, detected_at,
			        lifecycle_state, assigned_solver, last_notified_at, last_state_change FROM disputes`,
			`SELECT id, dispute_id, solver_pubkey, sent_at, status, error_message, notif_type FROM notifications`,
			`SELECT id, dispute_id, from_state, to_state, transitioned_at, trigger FROM dispute_state_transitions`,
			`SELECT id, session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at FROM mediation_events`,
			`SELECT dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, status, fallback_broadcast FROM escalation_dispatches`,
		} {
			_, err := db.Pool.Exec(ctx, q)
			require.NoError(t, err, q)
		}
	})

	t.Run("ConcurrentRunnersApplyEachMigrationOnce", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewEmptyDB(t)
		ctx := t.Context()

		const runners = 4
		var wg sync.WaitGroup
		total := make([]int, runners)
		errs := make([]error, runners)
		for i := range runners {
			pool := db.OpenPool(t) // its own sessions, like a separate replica
			wg.Go(func() {
				applied, err := pgdb.MigrateUp(ctx, pool, nil)
				total[i], errs[i] = len(applied), err
			})
		}
		wg.Wait()
		sum := 0
		for i := range runners {
			require.NoError(t, errs[i])
			sum += total[i]
		}
		require.Equal(t, migrationFiles(t), sum, "each migration applied by exactly one runner")

		var rows int
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM `+pgdb.VersionTable+` WHERE version_id > 0`).Scan(&rows))
		require.Equal(t, migrationFiles(t), rows)
	})
}

func TestReadyCheckUnreachable(t *testing.T) {
	t.Parallel()

	pool, err := pgdb.Open(context.Background(), "postgres://nobody@127.0.0.1:1/none?sslmode=disable&connect_timeout=1", 1)
	require.NoError(t, err)
	defer pool.Close()
	require.ErrorContains(t, pgdb.ReadyCheck(pool)(t.Context()), "database unreachable")
}

func TestOpenRequiresURL(t *testing.T) {
	t.Parallel()

	_, err := pgdb.Open(context.Background(), "", 1)
	require.ErrorIs(t, err, pgdb.ErrNoURL)
	_, err = pgdb.Open(context.Background(), "postgres://user:hunter2@%zz", 1)
	require.Error(t, err)
	require.NotContains(t, err.Error(), "hunter2", "a bad URL never echoes the password")
}

// migrationFiles is how many migrations there are (numbers may have gaps,
// so it is not schema.Version()).
func migrationFiles(t testing.TB) int {
	t.Helper()
	entries, err := fs.ReadDir(schema.Migrations(), ".")
	require.NoError(t, err)
	return len(entries)
}

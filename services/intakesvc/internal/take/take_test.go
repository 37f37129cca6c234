package take_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
	"github.com/serbero/serbero/services/intakesvc/internal/take"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

func rev(id string, at int64, s string) event.Revision {
	return event.Revision{EventID: id, Pubkey: "m", CreatedAt: at, DisputeID: "d", Status: lifecycle.Status(s), Initiator: "buyer"}
}

func count(t *testing.T, db *pgdbtest.DB, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// An intent holds the assignment DMs of an in-progress revision until the
// outcome; a success names Serbero (its pubkey from relaygw) and releases
// them, announcing the change; a failure releases them naming nobody.
func TestRecordHoldsAndReleasesAssignments(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	gw := relaygwtest.Start(t, relaygwtest.Options{DB: db, Logger: slog.New(slog.DiscardHandler)})
	st := store.New(db.Pool)
	clock := clockwork.NewFakeClockAt(time.Now())
	changes := changefeed.NewBroadcast()
	r := take.New(take.Deps{Store: st, Relaygw: gw.Client, Changes: changes, Clock: clock})
	ctx := context.Background()
	in := intake.Input{Solvers: []string{"s1", "s2"}, Now: clock.Now()}
	for _, d := range []string{"d", "d2"} {
		r0 := rev("e-"+d, 100, "initiated")
		r0.DisputeID = d
		_, err := intake.Apply(ctx, st, r0, in)
		require.NoError(t, err)
	}

	got, err := r.Record(ctx, "d", take.Intent, time.Minute)
	require.NoError(t, err)
	require.Equal(t, clock.Now().Add(time.Minute).Unix(), *got.TakeIntentUntil)
	res, err := intake.Apply(ctx, st, rev("e2", 200, "in-progress"), in)
	require.NoError(t, err)
	require.Len(t, res.JobIDs, 2)
	require.Equal(t, 2, count(t, db, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 'assignment' AND not_before > now()`),
		"held while the take is pending")

	woken := changes.C()
	got, err = r.Record(ctx, "d", take.Succeeded, 0)
	require.NoError(t, err)
	require.Equal(t, gw.Serbero.PublicKey(), *got.AssignedSolver)
	require.Nil(t, got.TakeIntentUntil)
	require.Equal(t, 0, count(t, db, `SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 'assignment' AND not_before > now()`))
	select {
	case <-woken:
	default:
		t.Fatal("Serbero's take was not announced")
	}

	_, err = r.Record(ctx, "d2", take.Intent, time.Minute)
	require.NoError(t, err)
	got, err = r.Record(ctx, "d2", take.Failed, 0)
	require.NoError(t, err)
	require.Nil(t, got.AssignedSolver)
	require.Nil(t, got.TakeIntentUntil)

	_, err = r.Record(ctx, "nope", take.Intent, time.Minute)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = r.Record(ctx, "d", take.Stage(9), 0)
	require.Error(t, err)
}

package relaygw_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
	"github.com/serbero/serbero/services/relaygw/internal/lease"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// logSignal is a slog handler that writes to the test log and closes a
// channel the first time a message containing a substring is logged.
type logSignal struct {
	slog.Handler
	want string
	once *sync.Once
	seen chan struct{}
}

func newLogSignal(t *testing.T, want string) (*slog.Logger, <-chan struct{}) {
	s := &logSignal{Handler: slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}), want: want, once: &sync.Once{}, seen: make(chan struct{})}
	return slog.New(s), s.seen
}

func (s *logSignal) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, s.want) {
		s.once.Do(func() { close(s.seen) })
	}
	return s.Handler.Handle(ctx, r)
}

func (s *logSignal) WithAttrs(as []slog.Attr) slog.Handler {
	return &logSignal{Handler: s.Handler.WithAttrs(as), want: s.want, once: s.once, seen: s.seen}
}

func (s *logSignal) WithGroup(name string) slog.Handler {
	return &logSignal{Handler: s.Handler.WithGroup(name), want: s.want, once: s.once, seen: s.seen}
}

// testLog writes log lines to the test log while the test runs.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	if w.t.Context().Err() == nil {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(wait):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// sendDM sends one DM through h and reports whether a relay accepted it.
func sendDM(t *testing.T, h *relaygwtest.Harness, to, key string) *relaygwv1.SendDirectMessageResponse {
	t.Helper()
	r, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: to, Body: "dm " + key, IdempotencyKey: key})
	require.NoError(t, err)
	return r
}

// Two relaygw replicas on one database: only the lease holder is ready,
// connects to the relay and publishes; the standby sends nothing. When
// the holder's lease session drops (a crash, or Postgres cutting it), the
// holder stops publishing at once and the standby takes over within the
// lease time, resuming the dispute stream from the stored cursor, so an
// event published in between is not lost. A clean stop hands the lease
// back at once.
func TestSingletonLease(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rl := relay.Start(t)
	serbero, mostro := keys.Generate(), keys.Generate()
	const leaseTime = 2 * time.Second
	newPool := func() *pgxpool.Pool {
		p, err := pgxpool.New(context.Background(), db.URL)
		require.NoError(t, err)
		t.Cleanup(p.Close)
		return p
	}
	start := func(logger *slog.Logger, noWait bool) *relaygwtest.Harness {
		return relaygwtest.Start(t, relaygwtest.Options{
			DB: db, Relay: rl, Serbero: serbero, Mostro: mostro, Pool: newPool(), Logger: logger, NoWait: noWait,
			Config: func(c *relaygw.Config) { c.Lease = leaseTime },
		})
	}
	solver := fakesolver.Start(t, rl.URL())
	wraps := func() int { return len(rl.Events(nostr.Filter{Kinds: []int{1059}, Tags: nostr.TagMap{"p": {solver.Pubkey()}}})) }

	a := start(nil, false) // subscribed: it holds the lease
	require.True(t, a.Service.Leader())
	require.Eventually(t, func() bool { return a.Serving(t) }, wait, 10*time.Millisecond)
	conns := rl.Connections() // the holder's and the solver's
	bLog, bStandingBy := newLogSignal(t, "standing by")
	b := start(bLog, true)
	waitClosed(t, bStandingBy, "the second replica to find the lease taken")

	t.Run("OnlyTheHolderIsReadyAndPublishes", func(t *testing.T) {
		require.False(t, b.Service.Leader())
		require.False(t, b.Serving(t), "the standby is not ready")
		require.True(t, a.Serving(t))
		require.Equal(t, conns, rl.Connections(), "the standby does not connect to the relay")

		require.True(t, sendDM(t, a, solver.Pubkey(), "via-a").GetDelivered())
		require.Equal(t, 1, wraps())
		received := rl.Received()
		r := sendDM(t, b, solver.Pubkey(), "via-b")
		require.False(t, r.GetDelivered(), "the standby publishes nothing")
		require.Equal(t, relaygwv1.PublishOutcome_PUBLISH_OUTCOME_NOT_CONNECTED, r.GetResults()[0].GetOutcome())
		require.Contains(t, r.GetResults()[0].GetMessage(), "singleton lease")
		require.Equal(t, received, rl.Received(), "nothing reached the relay")
		require.Equal(t, 1, wraps())
		require.Len(t, solver.WaitFor(1, wait), 1)
	})

	colA, _ := streamDisputes(t, a, 0)
	first := a.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()-2))
	require.Equal(t, first.ID, colA.next(t).GetEventId())

	t.Run("TakeoverWhenTheHolderSessionDrops", func(t *testing.T) {
		cut := time.Now()
		terminateLeaseHolder(t, db)
		// Published while nobody may consume: the new holder reads it from
		// the stored cursor.
		between := a.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", nostr.Now()-1))
		require.Eventually(t, func() bool { return !a.Service.Leader() }, wait, 5*time.Millisecond, "the old holder fences itself")
		require.Eventually(t, func() bool { return b.Service.Leader() }, wait, 5*time.Millisecond)
		took := time.Since(cut)
		require.Less(t, took, leaseTime, "taken over within the lease time")
		t.Logf("taken over after %s (lease %s)", took, leaseTime)
		require.Eventually(t, func() bool { return b.Serving(t) && !a.Serving(t) }, wait, 10*time.Millisecond)

		r := sendDM(t, a, solver.Pubkey(), "old-holder")
		require.False(t, r.GetDelivered(), "the old holder no longer publishes")
		require.True(t, sendDM(t, b, solver.Pubkey(), "new-holder").GetDelivered())
		require.Equal(t, 2, wraps())
		require.Eventually(t, func() bool { return rl.Connections() == conns }, wait, 10*time.Millisecond, "the old holder left the relay")

		colB, _ := streamDisputes(t, b, 0)
		require.Equal(t, first.ID, colB.next(t).GetEventId())
		require.Equal(t, between.ID, colB.next(t).GetEventId(), "the event published during the takeover is not lost")
		colB.none(t, 200*time.Millisecond)
		require.Equal(t, int64(1), a.Service.LeaseTerms())
		require.False(t, a.Service.Leader(), "the old holder stands by")
	})

	t.Run("CleanStopHandsTheLeaseBack", func(t *testing.T) {
		b.Stop()
		require.Eventually(t, func() bool { return a.Service.Leader() && a.Serving(t) }, wait, 10*time.Millisecond)
		require.Equal(t, int64(2), a.Service.LeaseTerms())
		require.True(t, sendDM(t, a, solver.Pubkey(), "back-to-a").GetDelivered())
		require.Equal(t, 3, wraps())
	})
}

// terminateLeaseHolder ends the Postgres session holding relaygw's lease,
// as a crashed holder's or a restarted server's would end.
func terminateLeaseHolder(t *testing.T, db *pgdbtest.DB) {
	t.Helper()
	var n int
	err := db.Pool.QueryRow(ctx(t), `SELECT count(pg_terminate_backend(pid)) FROM pg_locks
		WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND classid = ($1::bigint >> 32)::oid AND objid = ($1::bigint & 4294967295)::oid AND objsubid = 1`, lease.Key).Scan(&n)
	require.NoError(t, err)
	require.Equal(t, 1, n, "one session holds the lease")
}

package pglisten_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/pkg/replica"
)

const deadline = 20 * time.Second

func woken(t *testing.T, s *pglisten.Subscription, why string) {
	t.Helper()
	select {
	case <-s.C():
	case <-time.After(deadline):
		t.Fatalf("subscriber of %s not woken: %s", s.Channel(), why)
	}
}

func notWoken(t *testing.T, s *pglisten.Subscription, why string) {
	t.Helper()
	select {
	case <-s.C():
		t.Fatalf("subscriber of %s woken: %s", s.Channel(), why)
	default:
	}
}

type fixture struct {
	db   *pgdbtest.DB
	l    *pglisten.Listener
	app  string
	done chan error
	stop context.CancelFunc
}

func start(t *testing.T, channels ...string) (*fixture, []*pglisten.Subscription) {
	t.Helper()
	db := pgdbtest.NewDB(t)
	app := "pglisten-test-" + replica.ID("t")
	log, _ := logtest.New()
	l, err := pglisten.New(pglisten.Options{ConnConfig: db.Pool.Config().ConnConfig, ApplicationName: app, Logger: log,
		InitialBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	require.NoError(t, err)
	var subs []*pglisten.Subscription
	for _, ch := range channels {
		s, err := l.Subscribe(ch)
		require.NoError(t, err)
		subs = append(subs, s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &fixture{db: db, l: l, app: app, done: make(chan error, 1), stop: cancel}
	go func() { f.done <- l.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.done:
			require.NoError(t, err)
		case <-time.After(deadline):
			t.Error("Run did not return after cancel")
		}
	})
	select {
	case <-l.Ready():
	case <-time.After(deadline):
		t.Fatal("listener never ready")
	}
	return f, subs
}

func (f *fixture) notify(t *testing.T, channel string) {
	t.Helper()
	_, err := f.db.Pool.Exec(context.Background(), `SELECT pg_notify($1, 'x')`, channel)
	require.NoError(t, err)
}

func (f *fixture) backends(t *testing.T) []int {
	t.Helper()
	rows, err := f.db.Pool.Query(context.Background(), `SELECT pid FROM pg_stat_activity WHERE application_name = $1`, f.app)
	require.NoError(t, err)
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return pids
}

func TestNotificationsWakeTheirSubscribers(t *testing.T) {
	t.Parallel()
	f, subs := start(t, "serbero_a", "Serbero_B")
	a, b := subs[0], subs[1]
	woken(t, a, "once listening")
	woken(t, b, "once listening")
	require.True(t, f.l.Listening())

	a2, err := f.l.Subscribe("serbero_a")
	require.NoError(t, err)
	woken(t, a2, "a second subscriber of a listened channel at once")

	f.notify(t, "serbero_a")
	woken(t, a, "NOTIFY serbero_a")
	woken(t, a2, "NOTIFY serbero_a")
	notWoken(t, b, "a notification on another channel")

	f.notify(t, "Serbero_B") // case-sensitive, as pg_notify names it
	woken(t, b, "NOTIFY Serbero_B")

	// Notifications commit with their transaction (identical ones coalesce).
	tx, err := f.db.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `SELECT pg_notify('serbero_a', 'same'), pg_notify('serbero_a', 'same')`)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(context.Background()))
	woken(t, a, "committed NOTIFYs")
	woken(t, a2, "committed NOTIFYs")

	a2.Close()
	f.notify(t, "serbero_a")
	woken(t, a, "NOTIFY after the other subscriber left")
	notWoken(t, a2, "a closed subscription")
}

func TestSubscribeWhileRunning(t *testing.T) {
	t.Parallel()
	f, subs := start(t, "serbero_first")
	woken(t, subs[0], "once listening")

	late, err := f.l.Subscribe("serbero_late")
	require.NoError(t, err)
	woken(t, late, "its LISTEN is in place")
	f.notify(t, "serbero_late")
	woken(t, late, "NOTIFY on the late channel")
	require.Len(t, f.backends(t), 1, "still one connection")
}

func TestReconnectWakesEverySubscriber(t *testing.T) {
	t.Parallel()
	f, subs := start(t, "serbero_x", "serbero_y")
	x, y := subs[0], subs[1]
	woken(t, x, "once listening")
	woken(t, y, "once listening")
	pids := f.backends(t)
	require.Len(t, pids, 1)

	// The connection dies (a Postgres restart, a failover, a proxy).
	_, err := f.db.Pool.Exec(context.Background(), `SELECT pg_terminate_backend($1)`, pids[0])
	require.NoError(t, err)
	woken(t, x, "after the reconnection: it may have missed notifications")
	woken(t, y, "after the reconnection")
	require.Eventually(t, func() bool {
		now := f.backends(t)
		return len(now) == 1 && now[0] != pids[0]
	}, deadline, 20*time.Millisecond, "a new connection replaced the old one")

	f.notify(t, "serbero_y")
	woken(t, y, "NOTIFY on the new connection")
	notWoken(t, x, "only y was notified")
}

func TestShutdownIsClean(t *testing.T) {
	t.Parallel()
	f, subs := start(t, "serbero_s")
	woken(t, subs[0], "once listening")
	require.Len(t, f.backends(t), 1)
	f.stop()
	select {
	case err := <-f.done:
		require.NoError(t, err)
		f.done <- nil
	case <-time.After(deadline):
		t.Fatal("Run did not return")
	}
	require.False(t, f.l.Listening())
	require.Eventually(t, func() bool { return len(f.backends(t)) == 0 }, deadline, 20*time.Millisecond, "connection closed")
	require.ErrorContains(t, f.l.Run(context.Background()), "Run called twice")
}

func TestBackoffWhileTheDatabaseIsDown(t *testing.T) {
	t.Parallel()
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1:1/none?connect_timeout=5")
	require.NoError(t, err)
	clock := clockwork.NewFakeClock()
	log, logs := logtest.New()
	l, err := pglisten.New(pglisten.Options{ConnConfig: cfg, Clock: clock, Logger: log,
		InitialBackoff: time.Second, MaxBackoff: 4 * time.Second})
	require.NoError(t, err)
	sub, err := l.Subscribe("serbero_down")
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()

	lost := func() int { return len(logs.Find("listen connection lost; reconnecting")) }
	for attempt := 1; attempt <= 3; attempt++ {
		// Each failed attempt is followed by a wait on the clock, not a spin.
		require.NoError(t, clock.BlockUntilContext(t.Context(), 1))
		require.Equal(t, attempt, lost())
		rec := logs.Find("listen connection lost; reconnecting")[attempt-1]
		require.Contains(t, rec.Str("error"), "connect")
		clock.Advance(5 * time.Second)
	}
	select {
	case <-l.Ready():
		t.Fatal("ready without a connection")
	default:
	}
	notWoken(t, sub, "nothing listened")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(deadline):
		t.Fatal("Run did not return")
	}
}

func TestValidChannel(t *testing.T) {
	t.Parallel()
	l, err := pglisten.New(pglisten.Options{ConnConfig: &pgx.ConnConfig{}})
	require.NoError(t, err)
	for name, ch := range map[string]string{"empty": "", "too long": strings.Repeat("c", 64), "NUL": "a\x00b"} {
		_, err := l.Subscribe(ch)
		require.Error(t, err, name)
	}
	_, err = l.Subscribe(strings.Repeat("c", 63))
	require.NoError(t, err)
	_, err = pglisten.New(pglisten.Options{})
	require.True(t, err != nil && !errors.Is(err, context.Canceled))
}

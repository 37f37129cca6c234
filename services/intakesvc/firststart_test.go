package intakesvc_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// historyEvent is a signed dispute revision of the node created at `at`
// (a relay keeps such history for about 90 days).
func historyEvent(t *testing.T, mk keys.Keys, d, status string, at nostr.Timestamp) nostr.Event {
	t.Helper()
	ev := nostr.Event{Kind: 38386, CreatedAt: at, Tags: nostr.Tags{{"d", d}, {"s", status}, {"initiator", "seller"},
		{"y", "mostro", "Test node"}, {"z", "dispute"}}}
	require.NoError(t, mk.Sign(&ev))
	return ev
}

// newEnvWithHistory is newEnv where the relay already holds history
// before relaygw starts for the first time (no cursor anywhere). (The
// first start with a backfill window is tested with the configuration
// file, in internal/runner.)
func newEnvWithHistory(t *testing.T, history func(mk keys.Keys) []nostr.Event) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background()}
	e.db = pgdbtest.NewDB(t)
	e.relay = relay.Start(t)
	mk := keys.Generate()
	for _, ev := range history(mk) {
		e.relay.Inject(ev)
	}
	e.mostro = fakemostro.Start(t, fakemostro.Config{Keys: mk, Name: "Test node"}, e.relay.URL())
	e.gw = relaygwtest.Start(t, relaygwtest.Options{DB: e.db, Relay: e.relay, Mostro: mk, Logger: slog.New(slog.DiscardHandler)})
	e.rg = e.gw.Client
	e.serberoPK = e.gw.Serbero.PublicKey()
	e.mostroPK = mk.PublicKey()
	return e
}

// A first start with no cursor reads from now: nobody is DMed about the
// relays' history, nothing of it is recorded, and a dispute opened after
// the start is notified as usual.
func TestFirstStartDMsNobodyAboutHistory(t *testing.T) {
	t.Parallel()
	now := nostr.Now()
	e := newEnvWithHistory(t, func(mk keys.Keys) []nostr.Event {
		return []nostr.Event{
			historyEvent(t, mk, "d-hist-open", "initiated", now-1800),
			historyEvent(t, mk, "d-hist-taken", "in-progress", now-1800),
			historyEvent(t, mk, "d-hist-old", "initiated", now-30*86400),
		}
	})
	ss := e.solvers(1)
	s := e.start(e.config(pubkeys(ss)...))
	require.Eventually(t, func() bool {
		r := s.logs.Find("intake started")
		return len(r) == 1 && r[0].Str("start") == "first"
	}, wait, 10*time.Millisecond, "the log says this is a first start")

	ev := e.open("d-live", "buyer")
	require.Equal(t, initialBody("d-live", "buyer", ev.CreatedAt), ss[0].WaitFor(1, wait)[0].Body)
	e.waitState("d-live", "notified")
	ss[0].AssertNoMore(500 * time.Millisecond)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes`), "no history recorded")
	require.Empty(t, s.logs.Find("first start with a backfill window: recording the disputes relaygw backfills; only those still initiated are notified"))
}

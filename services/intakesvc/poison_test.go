package intakesvc_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
)

// An event the database refuses for good (here a d tag far too large to
// index, delivered by a relaygw that does not bound what it stores) does
// not stall intake: it is quarantined, listed by the API, counted, and the
// disputes after it are notified. A restart resumes after it, without
// meeting it again.
func TestRestartAfterPoison(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	hostile, stub := startStubRelaygw(t, e.relay.URL(), e.mostroPK)
	cfg := e.config(pubkeys(ss)...)
	first := e.start(cfg, func(o *options) { o.rg = hostile })

	b := make([]byte, 3000)
	_, _ = rand.Read(b)
	poison := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", hex.EncodeToString(b)}, {"s", "initiated"}, {"initiator", "buyer"}}}
	require.NoError(t, e.mostro.Keys().Sign(&poison))
	stub.deliver(&poison)
	ev := e.open("d-after-poison", "buyer")
	require.Equal(t, initialBody("d-after-poison", "buyer", ev.CreatedAt), ss[0].WaitFor(1, wait)[0].Body)
	e.waitState("d-after-poison", "notified")

	list, err := first.api.ListQuarantinedEvents(e.ctx, &intakesvcv1.ListQuarantinedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetEvents(), 1)
	q := list.GetEvents()[0]
	require.Equal(t, poison.ID, q.GetEventId())
	require.Equal(t, "limit", q.GetClass())
	require.Contains(t, q.GetReason(), "SQLSTATE 54000")
	require.EqualValues(t, 1, q.GetSeenCount())
	require.Equal(t, 1.0, testutil.ToFloat64(metric(t, first, "serbero_intakesvc_events_quarantined_total", "class", "limit")))
	e.waitCount(1, `SELECT count(*) FROM intake_cursor WHERE cursor >= 2`)
	first.stop()

	second := e.start(cfg, func(o *options) { o.rg = hostile })
	require.Eventually(t, func() bool {
		r := second.logs.Find("intake started")
		return len(r) == 1 && r[0]["after_cursor"] == 2.0
	}, wait, 10*time.Millisecond, "the restart resumes after the poison")
	ev2 := e.open("d-after-restart", "seller")
	require.Equal(t, initialBody("d-after-restart", "seller", ev2.CreatedAt), ss[0].WaitFor(2, wait)[1].Body)
	e.waitState("d-after-restart", "notified")
	list, err = second.api.ListQuarantinedEvents(e.ctx, &intakesvcv1.ListQuarantinedEventsRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetEvents(), 1)
	require.EqualValues(t, 1, list.GetEvents()[0].GetSeenCount(), "not met again")
	ss[0].AssertNoMore(300 * time.Millisecond)
}

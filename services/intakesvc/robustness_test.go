package intakesvc_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/intakesvc"
)

// Only the newest revision per dispute applies: a revision older than one
// already applied changes nothing, even when relays deliver it late.
func TestNewestRevisionWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	e.start(e.config(pubkeys(ss)...))

	initiated := e.open("d-rev", "buyer")
	ss[0].WaitFor(1, wait)
	e.waitState("d-rev", "notified")
	// The node takes it, then settles it; relaygw hears of the in-progress
	// revision only after the settled one (a slow relay).
	e.relay.SetFaults(relay.Faults{DropIncoming: revisionOf("d-rev", "in-progress")})
	e.mostro.TakeOver("d-rev", keys.Generate().PublicKey())
	inProgress := e.mostro.Revisions("d-rev")[1]
	e.relay.ClearFaults()
	settled := e.setStatus("d-rev", "settled")
	e.waitState("d-rev", "resolved")
	e.relay.Inject(inProgress) // delivered late
	e.waitProcessed(inProgress)

	require.Equal(t, "resolved", e.state("d-rev"))
	require.Equal(t, 0, e.count(`SELECT count(*) FROM intake_notification_jobs WHERE notif_type = 'assignment'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes WHERE newest_event_id = $1 AND dispute_status = 'settled' AND event_id = $2`,
		settled.ID, initiated.ID))
	// Same second (an older node stamps revisions by the second): the lower id wins, whatever
	// the order of arrival. (A relay keeps only one of two same-second
	// revisions; relaygw may hear both from different relays.)
	e.open("d-tie", "seller")
	e.waitState("d-tie", "notified")
	e.relay.SetFaults(relay.Faults{DropIncoming: func(ev *nostr.Event) bool { return ev.Tags.GetD() == "d-tie" }})
	e.mostro.UpdateBehavior(func(b *fakemostro.Behavior) { b.SameSecondRevisions = true })
	e.mostro.TakeOver("d-tie", keys.Generate().PublicKey())
	e.mostro.SetStatus("d-tie", "seller-refunded")
	e.relay.ClearFaults()
	revs := e.mostro.Revisions("d-tie") // all three stamped the same second
	require.Equal(t, revs[0].CreatedAt, revs[1].CreatedAt)
	require.Equal(t, revs[1].CreatedAt, revs[2].CreatedAt)
	for _, r := range []nostr.Event{revs[2], revs[1]} { // arrival order: reverse
		e.relay.Inject(r)
		e.waitProcessed(r)
	}
	// Fold the arrivals through the rule: a revision applies only if its id
	// is lower; resolved is terminal.
	winner, wantState := revs[0], "notified"
	for _, r := range []nostr.Event{revs[2], revs[1]} {
		if r.ID < winner.ID {
			winner = r
			if wantState != "resolved" {
				wantState = map[string]string{"in-progress": "taken", "seller-refunded": "resolved"}[r.Tags.Find("s")[1]]
			}
		}
	}
	e.waitApplied(winner)
	require.Equal(t, wantState, e.state("d-tie"))
}

// An event that does not come from the configured Mostro node is rejected
// by intakesvc itself, even when relaygw (here: a relaygw misconfigured
// with another node's pubkey) delivers it.
func TestForgedAuthorIsRejectedEvenIfDelivered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	hostile, stub := startStubRelaygw(t, e.relay.URL(), e.mostroPK)
	s := e.start(e.config(pubkeys(ss)...), func(o *options) { o.rg = hostile })

	// An event by another key, delivered by a relaygw that accepts its author.
	forgerSK := nostr.GeneratePrivateKey()
	forged := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "d-forged"}, {"s", "initiated"}, {"initiator", "buyer"}}}
	require.NoError(t, forged.Sign(forgerSK))
	stub.deliver(&forged)
	// One claiming the Mostro pubkey (id recomputed) but signed by the forger.
	claim := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "d-forged-2"}, {"s", "initiated"}}}
	require.NoError(t, claim.Sign(forgerSK))
	claim.PubKey = e.mostroPK
	claim.ID = claim.GetID()
	stub.deliver(&claim)
	// One by the node with its s tag altered after signing.
	tev := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", "d-tampered"}, {"s", "initiated"}}}
	require.NoError(t, e.mostro.Keys().Sign(&tev))
	tev.Tags[1] = nostr.Tag{"s", "settled"}
	stub.deliver(&tev)
	// A genuine event without a d tag.
	noD := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"s", "initiated"}, {"initiator", "buyer"}}}
	require.NoError(t, e.mostro.Keys().Sign(&noD))
	stub.deliver(&noD)
	// A genuine dispute after them is still handled.
	ok := e.open("d-genuine", "buyer")
	require.Equal(t, initialBody("d-genuine", "buyer", ok.CreatedAt), ss[0].WaitFor(1, wait)[0].Body)
	e.waitApplied(ok)
	ss[0].AssertNoMore(300 * time.Millisecond)

	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes`))
	for reason, want := range map[string]float64{"forged_author": 1, "bad_signature": 1, "bad_id": 1, "missing_d": 1} {
		require.Equal(t, want, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_events_rejected_total", "reason", reason)), reason)
	}
	require.Contains(t, s.logs.String(), "dispute event rejected: missing `d` tag")
}

// A missing initiator (older nodes omit the tag) is recorded as unknown and
// still notified.
func TestMissingInitiatorIsRecordedUnknownAndNotified(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	e.start(e.config(pubkeys(ss)...))
	ev := e.open("d-old-node", "")
	require.Equal(t, "New Mostro dispute requires attention.\ndispute_id: d-old-node\ninitiator: unknown\nevent_timestamp: "+
		fmt.Sprint(int64(ev.CreatedAt))+"\nstatus: initiated", ss[0].WaitFor(1, wait)[0].Body)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes WHERE initiator_role = 'unknown'`))
}

// A subscriber that first sees a dispute after it was taken records it and
// tells solvers it was taken (never "requires attention"); one first seen
// resolved is recorded silently.
func TestLateSubscriberRecordsTakenAndResolvedDisputes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	e.start(e.config(pubkeys(ss)...))
	// relaygw never hears of the initiated revisions (Serbero was down and
	// relays kept only the latest revision).
	e.relay.SetFaults(relay.Faults{DropIncoming: func(ev *nostr.Event) bool {
		return ev.Kind == 38386 && ev.Tags.FindWithValue("s", "initiated") != nil
	}})
	e.mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: "d-late-taken"})
	e.mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: "d-late-done", Initiator: "seller"})
	e.relay.ClearFaults()
	e.takeOver("d-late-taken")
	require.Equal(t, assignmentBody("d-late-taken", "unknown"), ss[0].WaitFor(1, wait)[0].Body)
	e.setStatus("d-late-done", "cooperatively-canceled")
	e.waitState("d-late-done", "resolved")
	e.waitState("d-late-taken", "taken")
	ss[0].AssertNoMore(300 * time.Millisecond)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM dispute_state_transitions WHERE dispute_id = 'd-late-done'
		AND from_state = 'new' AND to_state = 'resolved' AND trigger = 'dispute_resolved_externally'`))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM disputes WHERE dispute_id = 'd-late-done' AND initiator_role = 'seller'`))
}

// Terminal statuses resolve the dispute; unknown ones are logged and the
// state kept; resolution is idempotent.
func TestResolutionAndUnknownStatuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	s := e.start(e.config(pubkeys(ss)...))
	e.open("d-x", "buyer")
	e.waitState("d-x", "notified")
	e.waitApplied(e.setStatus("d-x", "paused-by-node"))
	require.Equal(t, "notified", e.state("d-x"))
	require.Eventually(t, func() bool {
		return contains(s.logs.String(), "dispatcher: skipping dispute event with unrecognised s= value")
	}, wait, 10*time.Millisecond)
	e.setStatus("d-x", "released")
	e.waitState("d-x", "resolved")
	e.waitApplied(e.setStatus("d-x", "settled"))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM dispute_state_transitions WHERE to_state = 'resolved'`))
	require.Eventually(t, func() bool { return contains(s.logs.String(), "dispute_resolved_externally") }, wait, 10*time.Millisecond)
	ss[0].WaitFor(1, wait)
	ss[0].AssertNoMore(300 * time.Millisecond)
}

// The relay goes down and comes back while disputes flow (the node
// republishes what it could not publish meanwhile; DMs sent while it is
// down fail and are retried under the same idempotency key): every dispute
// reaches every solver exactly once.
func TestRelayRestartMidStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(2)
	cfg := e.config(pubkeys(ss)...)
	cfg.RenotifyEvery = 1 * time.Second
	e.start(cfg, func(o *options) { o.tuning = intakesvc.Tuning{PollInterval: 100 * time.Millisecond} })
	const n = 8
	var during []string
	for i := range n {
		d := fmt.Sprintf("d-restart-%d", i)
		switch {
		case i == 3:
			e.relay.Stop()
			fallthrough
		case i == 4:
			e.mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: d}) // fails to publish
			during = append(during, d)
		case i == 5:
			require.NoError(t, e.relay.Start())
			for _, d := range during {
				e.published(d) // the node republishes
			}
			fallthrough
		default:
			e.open(d, "buyer")
		}
	}
	for _, s := range ss {
		got := bodies(s.WaitFor(n, wait))
		seen := map[string]bool{}
		for _, b := range got {
			require.False(t, seen[b], "duplicate DM %q", b)
			seen[b] = true
		}
		s.AssertNoMore(500 * time.Millisecond)
	}
	e.waitCount(n, `SELECT count(*) FROM disputes WHERE lifecycle_state = 'notified'`)
}

// Postgres goes away from intakesvc while a dispute arrives: nothing is
// sent, nothing is lost; when it is back, the dispute is recorded and
// notified exactly once. Then the database goes away between a DM and its
// record: the DM is retried under the same idempotency key and the solver
// still sees it once.
func TestDatabaseUnavailableThenBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	proxy, proxied := startDBProxy(t, e.db.URL)
	pool := openPool(t, proxied)
	hooked := &hookedRelaygw{RelayGatewayServiceClient: e.rg}
	s := e.start(e.config(pubkeys(ss)...), func(o *options) {
		o.pool = pool
		o.rg = hooked
		o.tuning = intakesvc.Tuning{PollInterval: 100 * time.Millisecond}
	})
	e.open("d-before", "buyer")
	ss[0].WaitFor(1, wait)
	e.waitState("d-before", "notified")

	proxy.Cut()
	ev := e.open("d-during", "seller")
	require.Eventually(t, func() bool { return contains(s.logs.String(), "persistence_failed") }, wait, 10*time.Millisecond)
	ss[0].AssertNoMore(300 * time.Millisecond)
	require.Equal(t, 0, e.count(`SELECT count(*) FROM disputes WHERE dispute_id = 'd-during'`))
	proxy.Restore()

	require.Equal(t, initialBody("d-during", "seller", ev.CreatedAt), ss[0].WaitFor(2, wait)[1].Body)
	e.waitState("d-during", "notified")
	ss[0].AssertNoMore(500 * time.Millisecond)
	require.Equal(t, 2, e.count(`SELECT count(*) FROM notifications WHERE status = 'sent'`))
	require.GreaterOrEqual(t, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_persistence_failures_total")), 1.0)

	// The database goes away right after relaygw accepted a DM, before it
	// is recorded: recorded when it is back, and the solver saw it once.
	hooked.afterSend(func() { proxy.Cut() })
	ev3 := e.open("d-crash", "buyer")
	require.Equal(t, initialBody("d-crash", "buyer", ev3.CreatedAt), ss[0].WaitFor(3, wait)[2].Body)
	require.Eventually(t, func() bool { return contains(s.logs.String(), "record notification failed") }, wait, 10*time.Millisecond)
	hooked.afterSend(nil)
	proxy.Restore()
	e.waitState("d-crash", "notified")
	ss[0].AssertNoMore(500 * time.Millisecond)
	require.Equal(t, 1, e.count(`SELECT count(*) FROM notifications WHERE dispute_id = 'd-crash'`))
}

// hookedRelaygw runs a hook after each SendDirectMessage answer.
type hookedRelaygw struct {
	relaygwv1.RelayGatewayServiceClient
	mu   sync.Mutex
	hook func()
}

func (h *hookedRelaygw) afterSend(f func()) {
	h.mu.Lock()
	h.hook = f
	h.mu.Unlock()
}

func (h *hookedRelaygw) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest, opts ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error) {
	resp, err := h.RelayGatewayServiceClient.SendDirectMessage(ctx, req, opts...)
	h.mu.Lock()
	hook := h.hook
	h.mu.Unlock()
	if hook != nil {
		hook()
	}
	return resp, err
}

// Two replicas on one database (each with its own pool) consume the same
// stream and re-notify on the same timer: every solver gets each DM once,
// and each due dispute is re-notified once per period.
func TestTwoReplicasNeverNotifyTwice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(2)
	cfg := e.config(pubkeys(ss)...)
	cfg.RenotifyAfter = 2 * time.Second
	cfg.RenotifyEvery = 1 * time.Second
	a := e.start(cfg, func(o *options) { o.pool = e.db.OpenPool(t) })
	b := e.start(cfg, func(o *options) { o.pool = e.db.OpenPool(t) })
	// The intake cursor is shared through the database: a replica that
	// reads it after the other has already applied the events starts after
	// them and never receives them. Both must have read it (still 0) before
	// the first dispute, or "both replicas saw every event" cannot hold.
	for _, r := range []*svc{a, b} {
		require.Eventually(t, func() bool { return len(r.logs.Find("intake started")) > 0 },
			wait, 10*time.Millisecond, "replica never started its intake")
	}

	const n = 10
	for i := range n {
		e.open(fmt.Sprintf("d-rep-%02d", i), "buyer")
	}
	for _, s := range ss {
		s.WaitFor(n, wait)
	}
	e.waitCount(n, `SELECT count(*) FROM disputes WHERE lifecycle_state = 'notified'`)
	// Both replicas saw every event; one recorded each dispute.
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(metric(t, a, "serbero_intakesvc_events_received_total")) == n &&
			testutil.ToFloat64(metric(t, b, "serbero_intakesvc_events_received_total")) == n
	}, wait, 10*time.Millisecond)
	detected := testutil.ToFloat64(metric(t, a, "serbero_intakesvc_disputes_detected_total", "status", "initiated")) +
		testutil.ToFloat64(metric(t, b, "serbero_intakesvc_disputes_detected_total", "status", "initiated"))
	require.Equal(t, float64(n), detected)

	// Let two re-notification periods pass, then stop both replicas.
	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM notifications WHERE notif_type = 're-notification' AND status = 'sent'`) >= 2*n*len(ss)
	}, wait, 20*time.Millisecond)
	a.stop()
	b.stop()
	// One batch per (dispute, period), each solver once per period.
	require.Equal(t, 0, e.count(`SELECT count(*) FROM (SELECT dispute_id, solver_pubkey, period FROM intake_notification_jobs
		GROUP BY 1, 2, 3 HAVING count(*) > 1) dup`))
	// And consecutive re-notifications of a dispute are a period apart.
	require.Equal(t, 0, e.count(`SELECT count(*) FROM (SELECT batch_at - lag(batch_at) OVER (PARTITION BY dispute_id, solver_pubkey ORDER BY period) AS gap
		FROM intake_notification_jobs WHERE notif_type = 're-notification') g WHERE gap < 2`))
	// What the solvers received: each dispute's initial DM once, and no
	// more re-notifications than periods claimed.
	periods := map[string]int{}
	rows, err := e.db.Pool.Query(e.ctx, `SELECT dispute_id, max(period) FROM intake_notification_jobs GROUP BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var d string
		var p int
		require.NoError(t, rows.Scan(&d, &p))
		periods[d] = p
	}
	require.NoError(t, rows.Err())
	for _, s := range ss {
		initial, renotified := map[string]int{}, map[string]int{}
		for _, m := range s.Messages() {
			lines := strings.Split(m.Body, "\n")
			d := strings.TrimPrefix(lines[1], "dispute_id: ")
			switch lines[0] {
			case "New Mostro dispute requires attention.":
				initial[d]++
			case "Mostro dispute is still unattended.":
				renotified[d]++
			default:
				t.Fatalf("unexpected DM %q", m.Body)
			}
		}
		require.Len(t, initial, n)
		for d, c := range initial {
			require.Equal(t, 1, c, d)
		}
		for d, c := range renotified {
			require.LessOrEqual(t, c, periods[d], d)
		}
	}
}

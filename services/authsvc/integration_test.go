package authsvc_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/authprobe"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// e2e is authsvc + a real relaygw + the fake Mostro on one in-process
// relay and one database, with a prober standing in for mediationsvc.
type e2e struct {
	db     *pgdbtest.DB
	mostro *fakemostro.Mostro
	rg     *relaygwtest.Harness
	auth   *instance
	prober *authprobe.Prober

	mu      sync.Mutex
	pick    []authprobe.Candidate
	tookIDs []string
}

func startE2E(t *testing.T, version int, takeTimeout time.Duration) *e2e {
	t.Helper()
	db := pgdbtest.NewDB(t)
	r := relay.Start(t)
	mk := keys.Generate()
	m := fakemostro.Start(t, fakemostro.Config{Keys: mk, ProtocolVersion: version, PoW: 2, PoWFirstContact: 4}, r.URL())
	rg := relaygwtest.Start(t, relaygwtest.Options{DB: db, Relay: r, Mostro: mk, Logger: discardLogger()})
	// The node is up before authsvc's first check: relaygw has its info
	// event (otherwise the first attempt fails as node_unreachable).
	rg.WaitMostroInfo(t)
	e := &e2e{db: db, mostro: m, rg: rg}
	tun := fastTuning("auth")
	tun.ClaimWait = takeTimeout + 10*time.Second // a claimed probe outlives its take, as in production
	// Many attempts: a slow run must not spend the cycle's budget first.
	e.auth = startInstance(t, db, "auth", instanceOpts{relaygw: rg.Client, tuning: tun, mutate: manyAttempts})
	e.prober = authprobe.New(authprobe.Options{
		Auth: e.auth.client, Relaygw: rg.Client, TakeTimeout: takeTimeout, RetryInterval: 50 * time.Millisecond,
		Logger: discardLogger(),
		Pick: func(context.Context) (authprobe.Candidate, bool, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			if len(e.pick) == 0 {
				return authprobe.Candidate{}, false, nil
			}
			return e.pick[0], true, nil
		},
		OnTook: func(_ context.Context, c authprobe.Candidate, out authprobe.Outcome) {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.tookIDs = append(e.tookIDs, c.DisputeID)
			e.pick = e.pick[1:] // mediationsvc now mediates it
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = e.prober.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return e
}

// openDispute opens a dispute at the node and makes it eligible.
func (e *e2e) openDispute() fakemostro.Dispute {
	d := e.mostro.OpenDispute(fakemostro.DisputeSpec{})
	e.mu.Lock()
	e.pick = append(e.pick, authprobe.Candidate{DisputeID: d.ID, Status: "initiated"})
	e.mu.Unlock()
	e.prober.Kick()
	return d
}

func (e *e2e) waitState(t *testing.T, want authsvcv1.AuthorizationState) *authsvcv1.AuthState {
	t.Helper()
	require.Eventually(t, func() bool { return e.auth.state(t).GetState() == want }, wait, 10*time.Millisecond,
		"want %v, have %v", want, e.auth.state(t))
	return e.auth.state(t)
}

func TestEndToEndWithFakeMostro(t *testing.T) {
	t.Parallel()
	for _, version := range []int{2, 1} {
		t.Run(fmt.Sprintf("protocol v%d", version), func(t *testing.T) {
			t.Parallel()
			e := startE2E(t, version, 10*time.Second)

			// No dispute yet: the node is reachable, nothing else is known.
			require.Eventually(t, func() bool { return e.auth.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
			s := e.auth.state(t)
			require.Equal(t, stUnknown, s.GetState())
			require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_NODE_REACHABLE, s.GetEvidence().GetKind())
			require.Contains(t, s.GetEvidence().GetSummary(), fmt.Sprintf("protocol v%d", version))

			// A dispute appears; the node does not know Serbero as a solver:
			// the probe's take is refused with cant-do invalid_pubkey.
			d1 := e.openDispute()
			s = e.waitState(t, stUnauthorized)
			require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_CANT_DO_INVALID_PUBKEY, s.GetEvidence().GetKind())
			require.Equal(t, d1.ID, s.GetEvidence().GetDisputeId())
			require.GreaterOrEqual(t, s.GetAttempt(), int32(1)) // the cycle retries every 200-400 ms
			e.mostro.WaitRequest(t, mostro.ActionAdminTakeDispute, d1.ID, wait)
			require.Empty(t, e.mostro.Dispute(d1.ID).Solver)
			require.GreaterOrEqual(t, auditCount(t, e.db, "auth_retry_attempt"), 1)

			// The operator registers Serbero (what admin-add-solver does); the
			// next attempt's probe takes the dispute for real. (Not the real
			// admin-add-solver message: the node answers its own key, so the
			// reply lands in its own inbox, where it is dropped or, one time in
			// four under PoW 2, processed as a request; that would muddle the
			// no-drops check below.)
			e.mostro.AddSolver(e.rg.Serbero.PublicKey(), fakemostro.PermRead)
			s = e.waitState(t, stAuthorized)
			require.Empty(t, e.mostro.Drops(), "every probe met the node's intake rules (first-contact PoW included)")
			require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE, s.GetEvidence().GetKind())
			require.Equal(t, d1.ID, s.GetEvidence().GetDisputeId())
			require.Equal(t, e.rg.Serbero.PublicKey(), e.mostro.Dispute(d1.ID).Solver, "the probe really took the dispute")
			require.Equal(t, mostro.DisputeInProgress, e.mostro.Dispute(d1.ID).Status)
			require.Equal(t, 1, auditCount(t, e.db, "auth_retry_recovered"))
			require.Equal(t, int(s.GetAttempt())-1, auditCount(t, e.db, "auth_retry_attempt"), "one row per failed attempt")
			require.Zero(t, auditCount(t, e.db, "auth_retry_terminated"))
			e.mu.Lock()
			require.Equal(t, []string{d1.ID}, e.tookIDs, "the taken dispute is handed to mediationsvc")
			e.mu.Unlock()
		})
	}
}

func TestEndToEndSilentNodeIsNoReply(t *testing.T) {
	t.Parallel()
	e := startE2E(t, 2, time.Second)
	e.mostro.AddSolver(e.rg.Serbero.PublicKey(), fakemostro.PermRead)
	e.mostro.UpdateBehavior(func(b *fakemostro.Behavior) { b.SilentTakes = true })
	d := e.openDispute()
	s := e.waitState(t, stUnauthorized)
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_NO_REPLY, s.GetEvidence().GetKind(), "no reply is evidence against, and says so")
	require.Equal(t, d.ID, s.GetEvidence().GetDisputeId())

	// The node answers again: the next probe recovers.
	e.mostro.UpdateBehavior(func(b *fakemostro.Behavior) { b.SilentTakes = false })
	e.waitState(t, stAuthorized)
	require.Equal(t, e.rg.Serbero.PublicKey(), e.mostro.Dispute(d.ID).Solver)
}

// disputeView is what mediationsvc knows of the disputes: the newest status
// of each, from relaygw's stream of verified dispute events.
type disputeView struct {
	mu     sync.Mutex
	status map[string]string
	at     map[string]time.Time
}

func watchDisputes(t *testing.T, rg relaygwv1.RelayGatewayServiceClient) *disputeView {
	t.Helper()
	v := &disputeView{status: map[string]string{}, at: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := rg.StreamDisputeEvents(ctx, &relaygwv1.StreamDisputeEventsRequest{})
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			msg, err := stream.Recv()
			if err != nil {
				return
			}
			var d, s string
			for _, tag := range msg.GetEvent().GetTags() {
				if vals := tag.GetValues(); len(vals) >= 2 {
					switch vals[0] {
					case "d":
						d = vals[1]
					case "s":
						s = vals[1]
					}
				}
			}
			at := msg.GetEvent().GetCreatedAt().AsTime()
			v.mu.Lock()
			if prev, ok := v.at[d]; !ok || !at.Before(prev) {
				v.status[d], v.at[d] = s, at
			}
			v.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return v
}

// Status implements authprobe.StatusFunc.
func (v *disputeView) Status(_ context.Context, id string) (string, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.status[id], nil
}

func (v *disputeView) waitStatus(t *testing.T, id, want string) {
	t.Helper()
	require.Eventually(t, func() bool { s, _ := v.Status(context.Background(), id); return s == want }, wait, 10*time.Millisecond,
		"dispute %s never seen %s", id, want)
}

// Another solver takes a dispute first; Serbero's take of it is refused
// with cant-do invalid_pubkey, which Mostro answers to every solver of a
// dispute no longer initiated: with the dispute's newest status reported,
// authsvc does not count it against Serbero.
func TestADisputeAnotherSolverTookFirstIsNoEvidenceAgainstSerbero(t *testing.T) {
	t.Parallel()
	e := startE2E(t, 2, 10*time.Second)
	e.mostro.AddSolver(e.rg.Serbero.PublicKey(), fakemostro.PermRead)
	d1 := e.openDispute()
	proof := e.waitState(t, stAuthorized)
	require.Equal(t, d1.ID, proof.GetEvidence().GetDisputeId())
	view := watchDisputes(t, e.rg.Client)
	human := keys.Generate().PublicKey()
	e.mostro.AddSolver(human, fakemostro.PermRead)
	ctx := context.Background()

	// take has the human solver take a fresh dispute first, then Serbero
	// try it as mediationsvc would: picked while still initiated.
	take := func(status authprobe.StatusFunc) authprobe.Outcome {
		t.Helper()
		d := e.mostro.OpenDispute(fakemostro.DisputeSpec{})
		view.waitStatus(t, d.ID, "initiated")
		e.mostro.TakeOver(d.ID, human)
		out, err := authprobe.TakeAndReport(ctx, e.rg.Client, e.auth.client, authprobe.Candidate{DisputeID: d.ID, Status: "initiated"},
			authprobe.TakeOptions{Timeout: 10 * time.Second, FirstContact: true, DisputeStatus: status, StatusSettle: 200 * time.Millisecond})
		require.NoError(t, err)
		require.Equal(t, authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO, out.Reported)
		require.Equal(t, "invalid_pubkey", out.CantDoReason)
		require.Equal(t, human, e.mostro.Dispute(d.ID).Solver)
		return out
	}

	// The in-progress revision was already seen when the answer came.
	out := take(func(ctx context.Context, id string) (string, error) {
		view.waitStatus(t, id, "in-progress")
		return view.Status(ctx, id)
	})
	require.Equal(t, "in-progress", out.DisputeStatus)
	require.Equal(t, stAuthorized, out.State.GetState())

	// The in-progress revision arrives after the answer.
	var calls int
	out = take(func(ctx context.Context, id string) (string, error) {
		if calls++; calls == 1 {
			return "initiated", nil // the revision is still on its way
		}
		view.waitStatus(t, id, "in-progress")
		return view.Status(ctx, id)
	})
	require.Equal(t, 2, calls, "asked again after the settle wait")
	require.Equal(t, "in-progress", out.DisputeStatus)
	require.Equal(t, stAuthorized, out.State.GetState())

	s := e.auth.state(t)
	require.Equal(t, stAuthorized, s.GetState())
	require.Equal(t, proof.GetVersion(), s.GetVersion(), "the answer never changed")
	require.Equal(t, d1.ID, s.GetEvidence().GetDisputeId(), "the proof is still the take of d1")
	require.Zero(t, auditCount(t, e.db, "auth_retry_attempt"))

	// Without the newest status the same answer counts against Serbero.
	out = take(nil)
	require.Equal(t, "initiated", out.DisputeStatus)
	require.Equal(t, stUnauthorized, out.State.GetState())
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_CANT_DO_INVALID_PUBKEY, out.State.GetEvidence().GetKind())
}

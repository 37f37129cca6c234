package authsvc_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/authprobe"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/authsvc"
)

const (
	stUnknown      = authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNKNOWN
	stAuthorized   = authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED
	stUnauthorized = authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNAUTHORIZED
	stTerminated   = authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED
)

func manyAttempts(c *authsvc.Config) { c.RetryMaxAttempts = 100000 }

// leaderOf waits until exactly one of the replicas runs the loop.
func leaderOf(t *testing.T, ins ...*instance) (leader *instance, others []*instance) {
	t.Helper()
	require.Eventually(t, func() bool {
		n := 0
		for _, in := range ins {
			if in.svc.IsLoopHolder() {
				n++
			}
		}
		return n == 1
	}, wait, 10*time.Millisecond, "exactly one replica runs the loop")
	for _, in := range ins {
		if in.svc.IsLoopHolder() {
			leader = in
		} else {
			others = append(others, in)
		}
	}
	return leader, others
}

func TestTwoReplicasOneLoopConsistentAnswers(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	var ins []*instance
	for _, name := range []string{"a", "b"} {
		tun := fastTuning(name)
		tun.RefreshInterval = time.Hour // changes must travel by NOTIFY
		ins = append(ins, startInstance(t, db, name, instanceOpts{relaygw: rg, tuning: tun}))
	}
	leader, others := leaderOf(t, ins...)
	follower := others[0]

	// Never two loops: sample for a while. (The lease TTL is 10 s, so only
	// a stall of several seconds could move the loop during the sampling.)
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		require.False(t, ins[0].svc.IsLoopHolder() && ins[1].svc.IsLoopHolder(), "two loops")
		time.Sleep(20 * time.Millisecond) // sampling, not synchronisation
	}
	require.True(t, leader.svc.IsLoopHolder())

	// The leader ran the initial check: node reachable, no take evidence,
	// a standing probe. Both replicas say so.
	require.Eventually(t, func() bool { return leader.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	s := leader.state(t)
	require.Equal(t, stUnknown, s.GetState())
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_NODE_REACHABLE, s.GetEvidence().GetKind())
	require.Contains(t, s.GetEvidence().GetSummary(), "protocol v2")
	require.Eventually(t, func() bool { return follower.state(t).GetVersion() == s.GetVersion() }, wait, 5*time.Millisecond)
	require.Equal(t, s.GetProbeId(), follower.state(t).GetProbeId())

	// An input on the follower: both answer the new state (by NOTIFY; the
	// fallback refresh is off).
	ctx := context.Background()
	resp, err := follower.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId: "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK,
		ProbeId: s.GetProbeId(), DisputeStatus: "initiated",
	})
	require.NoError(t, err)
	require.Equal(t, stAuthorized, resp.GetState().GetState())
	for _, in := range ins {
		require.Eventually(t, func() bool { return in.state(t).GetVersion() == resp.GetState().GetVersion() },
			wait, 5*time.Millisecond, "replica %s", in.name)
		require.Equal(t, stAuthorized, in.state(t).GetState())
		require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE, in.state(t).GetEvidence().GetKind())
	}

	// And on the leader: a loss starts a fresh cycle.
	lost, err := leader.client.ReportAuthorizationLost(ctx, &authsvcv1.ReportAuthorizationLostRequest{Reason: "node refused a re-take"})
	require.NoError(t, err)
	require.Equal(t, stUnauthorized, lost.GetState().GetState())
	require.Equal(t, int32(1), lost.GetState().GetAttempt())
	require.Eventually(t, func() bool { return follower.state(t).GetVersion() >= lost.GetState().GetVersion() }, wait, 5*time.Millisecond)
	require.Equal(t, 1, auditCount(t, db, "auth_retry_attempt"))
	require.Zero(t, auditCount(t, db, "auth_retry_recovered"), "the initial check passing writes no audit row")
}

func TestLoopMovesWhenTheHolderDiesAndStateSurvivesRestart(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	rg.set(func(f *fakeRelaygw) { f.infoErr = status.Error(codes.NotFound, "no info event yet") })
	// A short lease: this test measures how the loop moves.
	const ttl = 2 * time.Second
	tuning := func(name string) authsvc.Tuning { tun := fastTuning(name); tun.LeaseTTL = ttl; return tun }
	a := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: tuning("a"), mutate: manyAttempts})
	b := startInstance(t, db, "b", instanceOpts{relaygw: rg, tuning: tuning("b"), mutate: manyAttempts})
	leader, others := leaderOf(t, a, b)
	follower := others[0]

	// The node is unreachable: every attempt fails, one every 200-400 ms.
	require.Eventually(t, func() bool { return leader.state(t).GetAttempt() >= 3 }, wait, 10*time.Millisecond)
	require.Equal(t, stUnauthorized, leader.state(t).GetState())

	leader.crash()
	crashedAt := time.Now()
	atCrash := follower.state(t).GetAttempt()
	require.Eventually(t, follower.svc.IsLoopHolder, wait, 5*time.Millisecond, "the loop moves")
	moved := time.Since(crashedAt)
	t.Logf("loop moved %s after the holder died (lease ttl %s)", moved, ttl)
	require.Eventually(t, func() bool { return follower.state(t).GetAttempt() >= atCrash+3 }, wait, 10*time.Millisecond,
		"the cycle goes on where it was")

	// One loop at a time: every attempt has exactly one row, numbered 1..n.
	follower.stop() // a clean stop releases the lease at once
	var holder string
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT holder FROM authsvc_lease`).Scan(&holder))
	require.Empty(t, holder, "the lease was released")
	final := attemptNumbers(t, db)
	for i, n := range final {
		require.Equal(t, i+1, n, "attempt rows are 1..n without duplicates or gaps")
	}

	// A restarted replica keeps the state and the attempt count.
	c := startInstance(t, db, "c", instanceOpts{relaygw: rg, tuning: fastTuning("c"), mutate: manyAttempts})
	s := c.state(t)
	require.Equal(t, stUnauthorized, s.GetState())
	require.GreaterOrEqual(t, int(s.GetAttempt()), len(final))
	require.Eventually(t, c.svc.IsLoopHolder, wait, 5*time.Millisecond, "a released lease is taken")
	rg.set(func(f *fakeRelaygw) { f.infoErr = nil; f.registered = true })
	require.Eventually(t, func() bool {
		return c.state(t).GetProbeId() != ""
	}, wait, 10*time.Millisecond)
	require.Greater(t, int(c.state(t).GetAttempt()), len(final), "numbering continues after the restart")
}

func attemptNumbers(t *testing.T, db *pgdbtest.DB) []int {
	t.Helper()
	rows, err := db.Pool.Query(context.Background(),
		`SELECT payload_json FROM mediation_events WHERE kind = 'auth_retry_attempt' ORDER BY id`)
	require.NoError(t, err)
	defer rows.Close()
	var out []int
	for rows.Next() {
		var p struct {
			Attempt int    `json:"attempt"`
			Error   string `json:"error"`
		}
		var raw []byte
		require.NoError(t, rows.Scan(&raw))
		require.NoError(t, json.Unmarshal(raw, &p))
		require.Contains(t, p.Error, "no kind 38385 info event")
		out = append(out, p.Attempt)
	}
	require.NoError(t, rows.Err())
	return out
}

func TestWatchState(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: fastTuning("a")})
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	stream, err := in.client.WatchState(ctx, &authsvcv1.WatchStateRequest{})
	require.NoError(t, err)
	first, err := stream.Recv()
	require.NoError(t, err, "the current state comes at once")
	require.NotNil(t, first.GetState())

	probe := first.GetState().GetProbeId() // the initial check may have run already
	last := first.GetState().GetVersion()
	for probe == "" {
		msg, err := stream.Recv()
		require.NoError(t, err)
		require.Greater(t, msg.GetState().GetVersion(), last, "versions only increase")
		last = msg.GetState().GetVersion()
		probe = msg.GetState().GetProbeId()
	}
	_, err = in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, ProbeId: probe,
	})
	require.NoError(t, err)
	msg, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, stAuthorized, msg.GetState().GetState())

	// The stream ends when the server shuts down (it ends every open
	// stream): UNAVAILABLE, so a client reconnects.
	in.shutdownServer()
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
}

func TestProberRecoversOnceTheSolverIsRegistered(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	// Many attempts: a slow run must not spend the budget before the
	// operator registers Serbero.
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: fastTuning("a"), mutate: manyAttempts})

	var (
		mu   sync.Mutex
		took []string
	)
	p := authprobe.New(authprobe.Options{
		Auth: in.client, Relaygw: rg, RetryInterval: 50 * time.Millisecond,
		Pick: func(context.Context) (authprobe.Candidate, bool, error) {
			return authprobe.Candidate{DisputeID: "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", Status: "initiated"}, true, nil
		},
		OnTook: func(_ context.Context, c authprobe.Candidate, out authprobe.Outcome) {
			mu.Lock()
			defer mu.Unlock()
			took = append(took, c.DisputeID)
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	// Not registered: the probe's take is refused with invalid_pubkey.
	require.Eventually(t, func() bool { return in.state(t).GetState() == stUnauthorized }, wait, 10*time.Millisecond)
	s := in.state(t)
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_CANT_DO_INVALID_PUBKEY, s.GetEvidence().GetKind())
	require.Contains(t, s.GetLastError(), "cant-do invalid_pubkey")
	require.GreaterOrEqual(t, s.GetAttempt(), int32(1)) // the cycle goes on every 200-400 ms

	// The operator registers Serbero; the next probe proves it.
	rg.set(func(f *fakeRelaygw) { f.registered = true })
	require.Eventually(t, func() bool { return in.state(t).GetState() == stAuthorized }, wait, 10*time.Millisecond)
	s = in.state(t)
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE, s.GetEvidence().GetKind())
	require.Equal(t, 1, auditCount(t, db, "auth_retry_recovered"))
	require.Equal(t, int(s.GetAttempt())-1, auditCount(t, db, "auth_retry_attempt"))
	mu.Lock()
	require.Equal(t, []string{"5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"}, took, "the successful probe is handed to mediationsvc")
	mu.Unlock()
	// Authorized: no more probes.
	n := rg.takeCount()
	require.Never(t, func() bool { return rg.takeCount() != n }, 300*time.Millisecond, 20*time.Millisecond)
}

// gatedRelaygw holds every take until open is closed.
type gatedRelaygw struct {
	*fakeRelaygw
	open chan struct{}
}

func (g *gatedRelaygw) SendMostroRequest(ctx context.Context, req *relaygwv1.SendMostroRequestRequest, opts ...grpc.CallOption) (*relaygwv1.SendMostroRequestResponse, error) {
	select {
	case <-g.open:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.fakeRelaygw.SendMostroRequest(ctx, req, opts...)
}

// claimCounter records the answers to ClaimProbe.
type claimCounter struct {
	authsvcv1.AuthServiceClient
	mu       sync.Mutex
	answered int
	granted  int
}

func (c *claimCounter) ClaimProbe(ctx context.Context, req *authsvcv1.ClaimProbeRequest, opts ...grpc.CallOption) (*authsvcv1.ClaimProbeResponse, error) {
	resp, err := c.AuthServiceClient.ClaimProbe(ctx, req, opts...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err == nil {
		c.answered++
		if resp.GetGranted() {
			c.granted++
		}
	}
	return resp, err
}

func (c *claimCounter) counts() (answered, granted int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answered, c.granted
}

// Two mediationsvc replicas whose Pick returns the same dispute claim the
// same probe at the same time: only one of them may send the take.
func TestTwoProbersPickingTheSameDisputeTakeItOnce(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := &gatedRelaygw{fakeRelaygw: newFakeRelaygw(), open: make(chan struct{})}
	rg.set(func(f *fakeRelaygw) { f.registered = true })
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: fastTuning("a")})
	auth := &claimCounter{AuthServiceClient: in.client}

	// Both probers pick only once both are picking, so both claim the
	// probe while it still looks unclaimed.
	var (
		mu      sync.Mutex
		picking int
		bothIn  = make(chan struct{})
	)
	const dispute = "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"
	pick := func(ctx context.Context) (authprobe.Candidate, bool, error) {
		mu.Lock()
		if picking++; picking == 2 {
			close(bothIn)
		}
		mu.Unlock()
		select {
		case <-bothIn:
		case <-ctx.Done():
			return authprobe.Candidate{}, false, ctx.Err()
		}
		return authprobe.Candidate{DisputeID: dispute, Status: "initiated"}, true, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var probers []*authprobe.Prober
	for range 2 {
		p := authprobe.New(authprobe.Options{Auth: auth, Relaygw: rg, Pick: pick, RetryInterval: time.Hour, Logger: discardLogger()})
		probers = append(probers, p)
		wg.Add(1)
		go func() { defer wg.Done(); _ = p.Run(ctx) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	require.NotEqual(t, probers[0].ClaimerID(), probers[1].ClaimerID(), "every prober has its own claimer id")

	require.Eventually(t, func() bool { answered, _ := auth.counts(); return answered >= 2 }, wait, 10*time.Millisecond,
		"both probers claimed")
	close(rg.open) // the winner's take goes out now; a second winner's would too
	require.Eventually(t, func() bool { return in.state(t).GetState() == stAuthorized }, wait, 10*time.Millisecond)
	_, granted := auth.counts()
	require.Equal(t, 1, granted, "exactly one claim wins")
	require.Equal(t, 1, rg.takeCount(), "exactly one admin-take-dispute")
}

func TestProbeWithNothingEligible(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	tun := fastTuning("a")
	tun.ProbeWait = 300 * time.Millisecond
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: tun})
	ctx := context.Background()

	// Unknown with a standing probe: a quiet node is not a failure.
	require.Eventually(t, func() bool { return in.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	require.Nil(t, in.state(t).GetProbeDeadline(), "the standing probe has no deadline")
	require.Zero(t, auditCount(t, db, "auth_retry_attempt"))

	// Once unauthorized, an attempt's probe that nobody claims fails the
	// attempt with probe_unclaimed.
	_, err := in.client.ReportAuthorizationLost(ctx, &authsvcv1.ReportAuthorizationLostRequest{Reason: "test"})
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		return in.state(t).GetEvidence().GetKind() == authsvcv1.EvidenceKind_EVIDENCE_KIND_PROBE_UNCLAIMED
	}, wait, 10*time.Millisecond)
	require.Contains(t, in.state(t).GetLastError(), "no eligible dispute")
}

func TestClaimAndReportValidation(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	tun := fastTuning("a")
	tun.ClaimWait = time.Hour // the claims below must find the probe still claimed
	in := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: tun})
	ctx := context.Background()
	require.Eventually(t, func() bool { return in.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	probe := in.state(t).GetProbeId()

	_, err := in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	_, err = in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
	for _, req := range []*authsvcv1.ClaimProbeRequest{
		{ProbeId: probe, ClaimerId: "a"},
		{ProbeId: probe, DisputeId: "d-1"}, // no claimer: indistinguishable from any other
		{ProbeId: probe, DisputeId: "d-1", ClaimerId: " a"},
		{ProbeId: probe, DisputeId: "d-1", ClaimerId: strings.Repeat("a", 129)},
	} {
		_, err = in.client.ClaimProbe(ctx, req)
		require.Equal(t, codes.InvalidArgument, status.Code(err), "%v", req)
	}
	_, err = in.client.ResetTerminated(ctx, &authsvcv1.ResetTerminatedRequest{})
	require.Equal(t, codes.FailedPrecondition, status.Code(err))

	claims := []struct {
		probe, dispute, claimer string
		granted                 bool
	}{
		{probe, "d-1", "a", true},
		{probe, "d-1", "a", true},  // the winner asking again
		{probe, "d-1", "b", false}, // another replica that picked the same dispute
		{probe, "d-2", "a", false},
		{probe, "d-2", "b", false},
		{"stale", "d-3", "a", false},
	}
	for _, c := range claims {
		resp, err := in.client.ClaimProbe(ctx, &authsvcv1.ClaimProbeRequest{ProbeId: c.probe, DisputeId: c.dispute, ClaimerId: c.claimer})
		require.NoError(t, err)
		require.Equal(t, c.granted, resp.GetGranted(), "%+v", c)
		require.Equal(t, "d-1", resp.GetState().GetProbeDisputeId())
	}
}

func TestTakeOutcomeClassification(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	tun := fastTuning("a")
	tun.ProbeWait = time.Hour // attempt 2's probe must not expire and replace the last error checked below
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: tun})
	ctx := context.Background()
	cantDo := authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO
	// Sequential: each report starts from the previous state.
	steps := []struct {
		name      string
		req       *authsvcv1.ReportTakeOutcomeRequest
		wantState authsvcv1.AuthorizationState
		wantEv    authsvcv1.EvidenceKind
	}{
		{"invalid_pubkey for a dispute already in progress proves nothing",
			&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-1", Outcome: cantDo, CantDoReason: "invalid_pubkey", DisputeStatus: "in-progress"},
			stUnknown, 0},
		{"another cant-do reason proves nothing",
			&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-2", Outcome: cantDo, CantDoReason: "not_found"},
			stUnknown, 0},
		{"admin-took-dispute proves registration",
			&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-3", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK},
			stAuthorized, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE},
		{"inconclusive while authorized changes nothing",
			&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-4", Outcome: cantDo, CantDoReason: "invalid_pubkey", DisputeStatus: "in-progress"},
			stAuthorized, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE},
		{"not_authorized is evidence against",
			&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-5", Outcome: cantDo, CantDoReason: "not_authorized"},
			stUnauthorized, authsvcv1.EvidenceKind_EVIDENCE_KIND_CANT_DO_NOT_AUTHORIZED},
	}
	for _, st := range steps {
		st.req.ObservedAt = timestamppb.Now() // as the prober does: when the answer came
		resp, err := in.client.ReportTakeOutcome(ctx, st.req)
		require.NoError(t, err, st.name)
		require.Equal(t, st.wantState, resp.GetState().GetState(), st.name)
		if st.wantEv != 0 {
			require.Equal(t, st.wantEv, resp.GetState().GetEvidence().GetKind(), st.name)
			want := st.req.GetDisputeId()
			if st.wantState == stAuthorized {
				want = "d-3" // the evidence is the take that proved it
			}
			require.Equal(t, want, resp.GetState().GetEvidence().GetDisputeId(), st.name)
		}
	}
	require.Contains(t, in.state(t).GetLastError(), "cant-do not_authorized for dispute d-5")

	// No reply and invalid_pubkey for an initiated dispute are evidence
	// against too (checked while authorized, where they mean loss).
	for _, req := range []*authsvcv1.ReportTakeOutcomeRequest{
		{DisputeId: "d-6", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY},
		{DisputeId: "d-7", Outcome: cantDo, CantDoReason: "invalid_pubkey", DisputeStatus: "initiated"},
	} {
		db2 := pgdbtest.NewDB(t)
		in2 := startInstance(t, db2, "b", instanceOpts{relaygw: rg, tuning: fastTuning("b")})
		_, err := in2.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-0", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK})
		require.NoError(t, err)
		resp, err := in2.client.ReportTakeOutcome(ctx, req)
		require.NoError(t, err)
		require.Equal(t, stUnauthorized, resp.GetState().GetState(), req.GetDisputeId())
		in2.stop()
	}
}

func TestLateReportOfAnOlderTakeIsStale(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	in := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: fastTuning("a")})
	ctx := context.Background()
	proved := time.Now()
	resp, err := in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, ObservedAt: timestamppb.New(proved),
	})
	require.NoError(t, err)
	require.Equal(t, stAuthorized, resp.GetState().GetState())

	// A take that went unanswered before the proof, reported only now.
	resp, err = in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
		DisputeId: "d-2", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY, ObservedAt: timestamppb.New(proved.Add(-9 * time.Second)),
	})
	require.NoError(t, err)
	require.Equal(t, stAuthorized, resp.GetState().GetState(), "out-of-date counter-evidence does not end authorization")
	require.Equal(t, "d-1", resp.GetState().GetEvidence().GetDisputeId())
	require.Zero(t, auditCount(t, db, "auth_retry_attempt"))
	stale := gather(t, in, "serbero_authsvc_stale_reports_total")
	require.Len(t, stale, 1)
	require.Equal(t, 1.0, stale[0].GetCounter().GetValue())
}

func TestResetTerminatedStartsAFreshCycle(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	rg.set(func(f *fakeRelaygw) { f.version = 3 })
	tun := fastTuning("a")
	tun.ProbeWait = time.Hour // the new cycle's probe must stay open while its attempt number is checked
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: tun, mutate: func(c *authsvc.Config) {
		c.RetryMaxAttempts = 3
	}})
	require.Eventually(t, func() bool { return in.state(t).GetState() == stTerminated }, wait, 10*time.Millisecond)
	s := in.state(t)
	require.Contains(t, s.GetLastError(), "unsupported protocol version 3")
	require.Equal(t, 3, auditCount(t, db, "auth_retry_attempt"))
	require.Equal(t, 1, auditCount(t, db, "auth_retry_terminated"))
	require.Equal(t, 1.0, gauge(t, in, "serbero_authsvc_state", "terminated"))
	require.Equal(t, 3.0, counter(t, in, "serbero_authsvc_attempts_total", "failure"))

	rg.set(func(f *fakeRelaygw) { f.version = 2 })
	resp, err := in.client.ResetTerminated(context.Background(), &authsvcv1.ResetTerminatedRequest{})
	require.NoError(t, err)
	require.Equal(t, stUnauthorized, resp.GetState().GetState())
	require.Equal(t, int32(0), resp.GetState().GetAttempt())
	// Attempt 1 of the new cycle runs at once and grants a probe.
	require.Eventually(t, func() bool { return in.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	require.Equal(t, int32(1), in.state(t).GetAttempt())
}

func gauge(t *testing.T, in *instance, name, state string) float64 {
	t.Helper()
	for _, m := range gather(t, in, name) {
		for _, l := range m.GetLabel() {
			if l.GetValue() == state {
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, state)
	return 0
}

func counter(t *testing.T, in *instance, name, label string) float64 {
	t.Helper()
	for _, m := range gather(t, in, name) {
		for _, l := range m.GetLabel() {
			if l.GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

func gather(t *testing.T, in *instance, name string) []*dto.Metric {
	t.Helper()
	mfs, err := in.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()
		}
	}
	return nil
}

func TestMissingNodeInfoRightAfterStartIsRetried(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	rg := newFakeRelaygw()
	rg.set(func(f *fakeRelaygw) {
		f.infoErr = status.Error(codes.FailedPrecondition, "no info event (kind 38385) from the Mostro node has been received yet")
	})
	tun := fastTuning("a")
	tun.StartupGrace = time.Minute
	in := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: tun})

	require.Eventually(t, func() bool { return rg.infoCallCount() >= 3 }, wait, 10*time.Millisecond, "retried")
	require.Equal(t, stUnknown, in.state(t).GetState(), "relaygw has not heard from the node yet: nothing counted")
	require.Zero(t, auditCount(t, db, "auth_retry_attempt"))

	rg.set(func(f *fakeRelaygw) { f.infoErr = nil })
	require.Eventually(t, func() bool { return in.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	require.Equal(t, stUnknown, in.state(t).GetState())
	require.Zero(t, auditCount(t, db, "auth_retry_attempt"))
}

func TestRefreshCatchesAChangeWithoutNotification(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	tun := fastTuning("a")
	tun.RefreshInterval = 200 * time.Millisecond
	in := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: tun})
	require.Eventually(t, func() bool { return in.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
	before := in.state(t)

	// A change committed without NOTIFY (as if the notification was lost).
	_, err := db.Pool.Exec(context.Background(),
		`UPDATE authsvc_state SET version = version + 1, evidence_summary = 'changed behind the listener''s back'`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return in.state(t).GetVersion() == before.GetVersion()+1 }, wait, 10*time.Millisecond)
	require.Equal(t, "changed behind the listener's back", in.state(t).GetEvidence().GetSummary())
}

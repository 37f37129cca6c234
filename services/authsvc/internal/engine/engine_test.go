package engine_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/authsvc/internal/engine"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
	"github.com/serbero/serbero/services/authsvc/internal/store"
)

var t0 = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

func referenceConfig() revalidation.Config {
	return revalidation.Config{
		InitialInterval: 60 * time.Second, MaxInterval: 3600 * time.Second, MaxTotal: 86400 * time.Second, MaxAttempts: 24,
		ProbeWait: 60 * time.Second, ClaimWait: 45 * time.Second, RecheckAfter: time.Hour,
	}
}

// scriptedNode answers node checks from a script (nil = reachable).
type scriptedNode struct {
	mu     sync.Mutex
	errs   []error
	checks int
}

func (n *scriptedNode) CheckNode(context.Context) (revalidation.NodeInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.checks++
	if len(n.errs) > 0 {
		err := n.errs[0]
		n.errs = n.errs[1:]
		if err != nil {
			return revalidation.NodeInfo{}, err
		}
	}
	return revalidation.NodeInfo{ProtocolVersion: 2, MostroVersion: "0.18.5"}, nil
}

type harness struct {
	t     *testing.T
	cfg   revalidation.Config
	db    *pgdbtest.DB
	clock *clockwork.FakeClock
	node  *scriptedNode
	eng   *engine.Engine
	fence store.Fence
	log   *slog.Logger
	logs  logBuffer
	ctx   context.Context
}

// logBuffer counts log lines by message.
type logBuffer struct{ *logtest.Buffer }

func (l logBuffer) count(msg string) int { return len(l.Find(msg)) }

func newLogs() (*slog.Logger, logBuffer) {
	log, buf := logtest.New()
	return log, logBuffer{buf}
}

// setClock moves the fake clock forward to t (never backwards).
func setClock(c *clockwork.FakeClock, t time.Time) {
	if d := t.Sub(c.Now()); d > 0 {
		c.Advance(d)
	}
}

func newHarness(t *testing.T, cfg revalidation.Config) *harness {
	t.Helper()
	db := pgdbtest.NewDB(t)
	log, logs := newLogs()
	h := &harness{t: t, cfg: cfg, db: db, clock: clockwork.NewFakeClockAt(t0), node: &scriptedNode{}, log: log, logs: logs, ctx: context.Background()}
	// The migration made the initial check due at migration time; the
	// fake clock starts later than that, so it is due at once.
	h.eng = h.newEngine(db, "replica-a")
	st := store.New(db.Pool)
	term, ok, err := st.AcquireLease(h.ctx, "replica-a", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	h.fence = store.Fence{Holder: "replica-a", Term: term}
	require.NoError(t, h.eng.Refresh(h.ctx))
	return h
}

func (h *harness) newEngine(db *pgdbtest.DB, holder string) *engine.Engine {
	log := h.log
	n := 0
	return engine.New(engine.Options{
		Store: store.New(db.OpenPool(h.t)),
		Machine: revalidation.Machine{Config: h.cfg, NewID: func() string {
			n++
			return fmt.Sprintf("%s-probe-%d", holder, n)
		}},
		Clock:   h.clock,
		Checker: h.node,
		Logger:  log,
		Holder:  holder,
	})
}

func (h *harness) state() *authsvcv1.AuthState { return h.eng.Current().Proto }

// step moves the fake clock to the next wake and runs the loop once.
func (h *harness) step() {
	h.t.Helper()
	if w := h.eng.Current().State.NextWake(); !w.IsZero() {
		setClock(h.clock, w)
	}
	require.NoError(h.t, h.eng.StepForTest(h.ctx, h.fence))
}

// attempt runs one attempt answered by a probe outcome.
func (h *harness) attempt(outcome revalidation.EvidenceKind) {
	h.t.Helper()
	h.step()
	probe := h.state().GetProbeId()
	require.NotEmpty(h.t, probe, "a probe is granted: %v", h.state())
	res, err := h.eng.Apply(h.ctx, revalidation.ClaimProbe{ProbeID: probe, DisputeID: "d-1", ClaimerID: "mediationsvc-a"})
	require.NoError(h.t, err)
	require.NoError(h.t, res.Err)
	h.clock.Advance(3 * time.Second)
	_, err = h.eng.Apply(h.ctx, revalidation.TakeObserved{ProbeID: probe, Evidence: revalidation.Evidence{
		Kind: outcome, Summary: outcome.String() + " for dispute d-1", DisputeID: "d-1",
	}})
	require.NoError(h.t, err)
}

type auditRow struct {
	Kind    string
	Payload map[string]any
}

func (h *harness) audits() []auditRow {
	h.t.Helper()
	rows, err := h.db.Pool.Query(h.ctx, `SELECT kind, payload_json::text FROM mediation_events
		WHERE session_id IS NULL AND prompt_bundle_id IS NULL AND policy_hash IS NULL AND rationale_id IS NULL
		ORDER BY id`)
	require.NoError(h.t, err)
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		var p string
		require.NoError(h.t, rows.Scan(&r.Kind, &p))
		require.NoError(h.t, json.Unmarshal([]byte(p), &r.Payload))
		out = append(out, r)
	}
	require.NoError(h.t, rows.Err())
	var total int
	require.NoError(h.t, h.db.Pool.QueryRow(h.ctx, `SELECT count(*) FROM mediation_events`).Scan(&total))
	require.Len(h.t, out, total, "every auth audit row has session and bundle columns NULL")
	return out
}

func kinds(rows []auditRow, kind audit.Kind) []map[string]any {
	var out []map[string]any
	for _, r := range rows {
		if r.Kind == string(kind) {
			out = append(out, r.Payload)
		}
	}
	return out
}

func TestReferenceScenarios(t *testing.T) {
	t.Parallel()

	t.Run("immediate success writes no audit rows", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, referenceConfig())
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNKNOWN, h.state().GetState())
		h.attempt(revalidation.EvidenceTookDispute)
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, h.state().GetState())
		require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_TOOK_DISPUTE, h.state().GetEvidence().GetKind())
		require.Empty(t, h.audits())
		require.Nil(t, h.state().GetNextAttemptAt(), "no loop")
		require.Equal(t, 1, h.node.checks)
	})

	t.Run("recovery after N failures", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, referenceConfig())
		const failures = 4
		for range failures {
			h.attempt(revalidation.EvidenceCantDoInvalidPubkey)
			require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNAUTHORIZED, h.state().GetState())
		}
		h.attempt(revalidation.EvidenceTookDispute)
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, h.state().GetState())
		rows := h.audits()
		require.Len(t, kinds(rows, revalidation.AuditAttempt), failures)
		require.Equal(t, []map[string]any{{"attempt": float64(failures + 1)}}, kinds(rows, revalidation.AuditRecovered))
		require.Empty(t, kinds(rows, revalidation.AuditTerminated))
		require.Equal(t, 1, h.logs.count(revalidation.LogRecovered))
		require.Equal(t, 1, h.logs.count(revalidation.LogEnteringLoop))
	})

	t.Run("termination at max attempts", func(t *testing.T) {
		t.Parallel()
		cfg := referenceConfig()
		cfg.MaxAttempts = 5
		h := newHarness(t, cfg)
		for range 5 {
			h.attempt(revalidation.EvidenceNoReply)
		}
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED, h.state().GetState())
		rows := h.audits()
		require.Len(t, kinds(rows, revalidation.AuditAttempt), 5, "exactly max_attempts attempt rows")
		require.Equal(t, []map[string]any{{"attempt": float64(5), "cumulative_secs": float64(60 + 120 + 240 + 480)}},
			kinds(rows, revalidation.AuditTerminated), "the last attempt that ran")
		require.Equal(t, string(revalidation.AuditTerminated), rows[len(rows)-1].Kind)
		require.Equal(t, 1, h.logs.count(revalidation.LogTerminated))
		// The loop has nothing left to do.
		h.clock.Advance(100 * time.Hour)
		require.NoError(t, h.eng.StepForTest(h.ctx, h.fence))
		require.Len(t, h.audits(), 6)
	})

	t.Run("max_attempts = 1 still runs attempt 2", func(t *testing.T) {
		t.Parallel()
		cfg := referenceConfig()
		cfg.MaxAttempts = 1
		h := newHarness(t, cfg)
		h.attempt(revalidation.EvidenceNoReply)
		s := h.state()
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNAUTHORIZED, s.GetState(), "attempt 1 never terminates")
		require.Equal(t, 60*time.Second, s.GetNextAttemptAt().AsTime().Sub(h.clock.Now()))
		h.attempt(revalidation.EvidenceNoReply) // the loop waits 60 s on the fake clock, then attempt 2
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED, h.state().GetState())
		rows := h.audits()
		require.Equal(t, []map[string]any{
			{"attempt": float64(1), "error": "no_reply for dispute d-1"},
			{"attempt": float64(2), "error": "no_reply for dispute d-1"},
		}, kinds(rows, revalidation.AuditAttempt))
		require.Equal(t, []map[string]any{{"attempt": float64(2), "cumulative_secs": float64(60)}}, kinds(rows, revalidation.AuditTerminated))
		require.Equal(t, 1, h.logs.count(revalidation.LogTerminated))
	})

	t.Run("termination by cumulative time", func(t *testing.T) {
		t.Parallel()
		cfg := referenceConfig()
		cfg.MaxTotal = 1000 * time.Second
		h := newHarness(t, cfg)
		// Waits 60, 120, 240, 480 (cum 900), 960 (cum 1860 >= 1000) -> attempt 6.
		for range 6 {
			require.NotEqual(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED, h.state().GetState())
			h.attempt(revalidation.EvidenceCantDoNotAuthorized)
		}
		require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_TERMINATED, h.state().GetState())
		rows := h.audits()
		require.Len(t, kinds(rows, revalidation.AuditAttempt), 6)
		require.Equal(t, []map[string]any{{"attempt": float64(6), "cumulative_secs": float64(1860)}}, kinds(rows, revalidation.AuditTerminated))
	})

	t.Run("backoff sequence", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, referenceConfig())
		var got []int64
		for range 9 {
			h.attempt(revalidation.EvidenceCantDoInvalidPubkey)
			s := h.state()
			got = append(got, s.GetNextAttemptAt().AsTime().Sub(s.GetLastAttemptAt().AsTime()).Milliseconds()/1000)
		}
		require.Equal(t, []int64{60, 120, 240, 480, 960, 1920, 3600, 3600, 3600}, got)
	})
}

func TestAttemptWithoutClaimExpires(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referenceConfig())
	h.attempt(revalidation.EvidenceCantDoInvalidPubkey) // attempt 1 fails
	h.step()                                            // attempt 2 opens a probe
	require.NotEmpty(t, h.state().GetProbeId())
	require.Equal(t, int32(2), h.state().GetAttempt())
	h.step() // nobody claims it: it expires at its deadline
	s := h.state()
	require.Empty(t, s.GetProbeId())
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_PROBE_UNCLAIMED, s.GetEvidence().GetKind())
	require.Contains(t, s.GetLastError(), "no eligible dispute, or no mediationsvc prober running")
	require.Len(t, kinds(h.audits(), revalidation.AuditAttempt), 2)
}

func TestNodeCheckThatCannotRunIsRetriedWithoutCounting(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referenceConfig())
	h.node.errs = []error{fmt.Errorf("relaygw unavailable"), &engine.NodeProblem{Msg: "unsupported protocol version 3"}}
	h.step()
	require.Equal(t, 1, h.node.checks)
	require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNKNOWN, h.state().GetState(), "could not check: nothing counted")
	require.Empty(t, h.audits())
	h.step()
	require.Equal(t, 2, h.node.checks)
	s := h.state()
	require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNAUTHORIZED, s.GetState())
	require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_NODE_UNREACHABLE, s.GetEvidence().GetKind())
	require.Equal(t, []map[string]any{{"attempt": float64(1), "error": "mostro node check: unsupported protocol version 3"}},
		kinds(h.audits(), revalidation.AuditAttempt))
}

func TestRestartKeepsStateAndAttemptCount(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referenceConfig())
	for range 3 {
		h.attempt(revalidation.EvidenceNoReply)
	}
	before := h.state()
	require.Equal(t, int32(3), before.GetAttempt())

	// A new process: its own pool, its own engine, same database.
	again := h.newEngine(h.db, "replica-b")
	require.NoError(t, again.Refresh(h.ctx))
	after := again.Current().Proto
	require.Equal(t, before.GetState(), after.GetState())
	require.Equal(t, before.GetAttempt(), after.GetAttempt())
	require.Equal(t, before.GetCumulativeWaitSeconds(), after.GetCumulativeWaitSeconds())
	require.Equal(t, before.GetNextAttemptAt().AsTime(), after.GetNextAttemptAt().AsTime())
	require.Equal(t, before.GetVersion(), after.GetVersion())

	// It continues the same cycle: attempt 4 is next.
	st := store.New(h.db.Pool)
	require.NoError(t, st.ReleaseLease(h.ctx, h.fence))
	term, ok, err := st.AcquireLease(h.ctx, "replica-b", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	h.eng, h.fence = again, store.Fence{Holder: "replica-b", Term: term}
	h.attempt(revalidation.EvidenceTookDispute)
	require.Equal(t, []map[string]any{{"attempt": float64(4)}}, kinds(h.audits(), revalidation.AuditRecovered))
}

func TestEvidenceKindsMatchTheAPI(t *testing.T) {
	t.Parallel()
	for k := revalidation.EvidenceNone; k <= revalidation.EvidenceNodeReachable; k++ {
		require.Equal(t, "EVIDENCE_KIND_"+strings.ToUpper(k.String()), authsvcv1.EvidenceKind(k).String())
	}
	for _, s := range revalidation.Statuses {
		require.Equal(t, "AUTHORIZATION_STATE_"+strings.ToUpper(s.String()), engine.ToProto(revalidation.State{Status: s}).GetState().String())
	}
}

// runEngine runs eng's loop (lease, listener, refresher) until the test ends.
func runEngine(t *testing.T, eng *engine.Engine) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = eng.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// A loop step whose write fails waits CheckRetry before trying again,
// instead of retrying at once (a transaction and a node check per turn)
// for as long as the failure lasts.
func TestFailedLoopWriteIsRetriedAfterAPause(t *testing.T) {
	t.Parallel()
	const stepFailed = "solver auth loop step failed; retrying"
	tests := []struct {
		name string
		// prepare brings the state to a pending write and returns the
		// machine time at which it is due.
		prepare func(h *harness) time.Time
	}{
		{"the node check's result", func(h *harness) time.Time {
			return h.eng.Current().State.NextWake() // the initial check
		}},
		{"a probe's expiry", func(h *harness) time.Time {
			h.attempt(revalidation.EvidenceCantDoInvalidPubkey) // attempt 1 fails
			h.step()                                            // attempt 2 opens a probe
			require.NotEmpty(h.t, h.state().GetProbeId())
			return h.eng.Current().State.NextWake() // its deadline
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, referenceConfig())
			due := tc.prepare(h)
			checks := h.node.checks
			version := h.eng.Current().State.Version
			// Every write of the state fails from now on.
			_, err := h.db.Pool.Exec(h.ctx, fmt.Sprintf(
				`ALTER TABLE authsvc_state ADD CONSTRAINT test_writes_fail CHECK (version <= %d)`, version))
			require.NoError(t, err)
			setClock(h.clock, due)
			runEngine(t, h.eng)

			require.Eventually(t, func() bool { return h.logs.count(stepFailed) >= 1 }, 30*time.Second, 5*time.Millisecond)
			// No busy retry while the machine clock stands still.
			require.Never(t, func() bool { return h.logs.count(stepFailed) > 1 }, time.Second, 20*time.Millisecond)
			h.node.mu.Lock()
			require.LessOrEqual(t, h.node.checks, checks+1, "one node check, not one per turn")
			h.node.mu.Unlock()

			// The failure clears; after CheckRetry the step is retried and
			// goes through.
			_, err = h.db.Pool.Exec(h.ctx, `ALTER TABLE authsvc_state DROP CONSTRAINT test_writes_fail`)
			require.NoError(t, err)
			h.clock.Advance(5 * time.Second) // the engine's default CheckRetry
			require.Eventually(t, func() bool { return h.eng.Current().State.Version > version }, 30*time.Second, 5*time.Millisecond)
			require.Equal(t, 1, h.logs.count(stepFailed))
		})
	}
}

// blockingNode is a node check that hangs until its context ends.
type blockingNode struct {
	budget chan time.Duration // the time the check was given
}

func (n *blockingNode) CheckNode(ctx context.Context) (revalidation.NodeInfo, error) {
	start := time.Now()
	dl, _ := ctx.Deadline()
	<-ctx.Done()
	select {
	case n.budget <- dl.Sub(start):
	default:
	}
	return revalidation.NodeInfo{}, fmt.Errorf("relaygw did not answer: %w", ctx.Err())
}

// A hanging node check must not keep the holder from renewing its lease:
// the loop renews between steps, so the check is bounded by the lease.
func TestHangingNodeCheckDoesNotCostTheLease(t *testing.T) {
	t.Parallel()
	const ttl = 6 * time.Second
	db := pgdbtest.NewDB(t)
	clock := clockwork.NewFakeClockAt(t0)
	log, logs := newLogs()
	node := &blockingNode{budget: make(chan time.Duration, 1)}
	st := store.New(db.OpenPool(t))
	eng := engine.New(engine.Options{
		Store:    st,
		Machine:  revalidation.Machine{Config: referenceConfig(), NewID: func() string { return "probe-1" }},
		Clock:    clock,
		Checker:  node,
		Logger:   log,
		Holder:   "replica-a",
		LeaseTTL: ttl,
	})
	require.NoError(t, eng.Refresh(context.Background()))
	setClock(clock, eng.Current().State.NextWake()) // the initial check is due
	runEngine(t, eng)
	require.Eventually(t, eng.IsLeader, 30*time.Second, 5*time.Millisecond)
	lease, err := st.CurrentLease(context.Background())
	require.NoError(t, err)

	var budget time.Duration
	select {
	case budget = <-node.budget:
	case <-time.After(30 * time.Second):
		t.Fatal("the node check never ended")
	}
	require.LessOrEqual(t, budget, ttl-ttl/3, "the check ends before the lease could lapse")
	now, err := st.CurrentLease(context.Background())
	require.NoError(t, err)
	require.True(t, now.Live, "the lease did not lapse during the check")
	require.Equal(t, lease.Term, now.Term, "the same term: the lease never changed hands")
	require.Equal(t, "replica-a", now.Holder)
	require.Zero(t, logs.count("solver auth loop lease lost"))
}

// A replica that starts finds an Authorized state whose proof is old: it
// goes back to Unknown and the loop runs a fresh initial check, whose
// standing probe is answered by a new take; nothing is audited.
func TestStartReChecksAnOldProof(t *testing.T) {
	t.Parallel()
	h := newHarness(t, referenceConfig())
	h.attempt(revalidation.EvidenceTookDispute)
	require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, h.state().GetState())
	proof := h.state().GetEvidence()

	// Two hours later a new process starts (the lease stays with replica-a).
	h.clock.Advance(2 * time.Hour)
	restarted := h.newEngine(h.db, "replica-b")
	runEngine(t, restarted)
	require.Eventually(t, func() bool {
		c := restarted.Current()
		return c != nil && c.State.Status == revalidation.StatusUnknown
	}, 30*time.Second, 5*time.Millisecond)
	require.Equal(t, 1, h.logs.count(revalidation.LogRecheck))
	require.NoError(t, h.eng.Refresh(h.ctx))
	s := h.state()
	require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNKNOWN, s.GetState())
	require.Equal(t, proof.GetKind(), s.GetEvidence().GetKind(), "the old proof is still what is known")
	require.Equal(t, int32(0), s.GetAttempt())
	require.Equal(t, h.clock.Now(), s.GetNextAttemptAt().AsTime(), "the initial check is due at once")

	// The loop's fresh initial check: a standing probe, answered by a take.
	checks := h.node.checks
	h.attempt(revalidation.EvidenceTookDispute)
	require.Equal(t, checks+1, h.node.checks, "the node was checked again")
	require.Equal(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_AUTHORIZED, h.state().GetState())
	require.Empty(t, h.audits(), "a re-check that passes writes no audit row")
}

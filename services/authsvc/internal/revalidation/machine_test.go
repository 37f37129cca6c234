package revalidation

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/audit"
)

var t0 = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

// defaults are the reference's numbers.
func defaults() Config {
	return Config{
		InitialInterval: 60 * time.Second,
		MaxInterval:     3600 * time.Second,
		MaxTotal:        86400 * time.Second,
		MaxAttempts:     24,
		ProbeWait:       60 * time.Second,
		ClaimWait:       45 * time.Second,
		RecheckAfter:    time.Hour,
	}
}

// sim drives the machine the way the loop does, on a fake clock, and
// records every audit row and log line.
type sim struct {
	t      *testing.T
	m      Machine
	s      State
	now    time.Time
	audits []audit.Payload
	logs   []LogRecord
	ids    int
}

func newSim(t *testing.T, cfg Config) *sim {
	sm := &sim{t: t, now: t0}
	sm.m = Machine{Config: cfg, NewID: func() string { sm.ids++; return fmt.Sprintf("probe-%d", sm.ids) }}
	sm.s = Initial(t0)
	return sm
}

func (sm *sim) apply(in Input) Result {
	sm.t.Helper()
	r := sm.m.Step(sm.s, in, sm.now)
	if r.Err == nil {
		if r.Changed {
			require.Equal(sm.t, sm.s.Version+1, r.State.Version, "a change bumps the version once")
		} else {
			require.Equal(sm.t, sm.s.Version, r.State.Version, "no change, no new version")
		}
		sm.s = r.State
		sm.audits = append(sm.audits, r.Audits...)
		sm.logs = append(sm.logs, r.Logs...)
	}
	return r
}

// advanceToWake moves the fake clock to the next scheduled wake.
func (sm *sim) advanceToWake() {
	sm.t.Helper()
	w := sm.s.NextWake()
	require.False(sm.t, w.IsZero(), "nothing scheduled in %v", sm.s.Status)
	if w.After(sm.now) {
		sm.now = w
	}
}

// nodeOK runs the due attempt's node check successfully.
func (sm *sim) nodeOK() {
	sm.t.Helper()
	require.True(sm.t, sm.apply(Tick{}).CheckNode, "an attempt is due")
	sm.apply(NodeChecked{Info: NodeInfo{ProtocolVersion: 2, MostroVersion: "0.18.5"}})
}

// attempt runs the next attempt: wait, node check, probe, outcome.
func (sm *sim) attempt(outcome EvidenceKind) {
	sm.t.Helper()
	sm.advanceToWake()
	sm.nodeOK()
	require.True(sm.t, sm.s.Probe.Open(), "no fresh evidence: a probe is granted")
	id := sm.s.Probe.ID
	require.NoError(sm.t, sm.apply(ClaimProbe{ProbeID: id, DisputeID: "d-1", ClaimerID: "replica-a"}).Err)
	sm.now = sm.now.Add(2 * time.Second)
	sm.apply(TakeObserved{ProbeID: id, Evidence: ev(outcome, sm.now)})
}

func ev(kind EvidenceKind, at time.Time) Evidence {
	return Evidence{Kind: kind, Summary: kind.String() + " for dispute d-1", ObservedAt: at, DisputeID: "d-1"}
}

func (sm *sim) count(kind audit.Kind) int {
	n := 0
	for _, a := range sm.audits {
		if a.Kind() == kind {
			n++
		}
	}
	return n
}

func (sm *sim) payloads(kind audit.Kind) []map[string]any {
	var out []map[string]any
	for _, a := range sm.audits {
		if a.Kind() == kind {
			b, err := json.Marshal(a)
			require.NoError(sm.t, err)
			var m map[string]any
			require.NoError(sm.t, json.Unmarshal(b, &m))
			out = append(out, m)
		}
	}
	return out
}

func (sm *sim) logged(msg string) int {
	n := 0
	for _, l := range sm.logs {
		if l.Msg == msg {
			n++
		}
	}
	return n
}

// fail1 drives the initial check to a failure (attempt 1).
func (sm *sim) fail1() {
	sm.t.Helper()
	sm.attempt(EvidenceCantDoInvalidPubkey)
	require.Equal(sm.t, StatusUnauthorized, sm.s.Status)
	require.Equal(sm.t, 1, sm.s.Attempt)
}

func TestImmediateSuccess(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		drive func(sm *sim)
	}{
		{"probe answered took", func(sm *sim) {
			sm.nodeOK()
			require.Equal(t, StatusUnknown, sm.s.Status, "no evidence yet: unknown, not a failure")
			require.True(t, sm.s.Probe.Open())
			require.True(t, sm.s.Probe.Deadline.IsZero(), "the initial check's probe is standing")
			require.Equal(t, EvidenceNodeReachable, sm.s.Evidence.Kind)
			sm.now = sm.now.Add(6 * time.Hour) // a quiet node: still unknown, nothing counted
			require.False(t, sm.apply(Tick{}).Changed)
			sm.apply(TakeObserved{ProbeID: sm.s.Probe.ID, Evidence: ev(EvidenceTookDispute, sm.now)})
		}},
		{"took reported before the check", func(sm *sim) {
			sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, t0)})
		}},
		{"took reported by a normal take while the standing probe is open", func(sm *sim) {
			sm.nodeOK()
			sm.now = sm.now.Add(time.Minute)
			sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now)})
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, defaults())
			tc.drive(sm)
			require.Equal(t, StatusAuthorized, sm.s.Status)
			require.Equal(t, EvidenceTookDispute, sm.s.Evidence.Kind)
			require.Empty(t, sm.audits, "immediate success writes no audit rows")
			require.False(t, sm.s.Probe.Open())
			require.True(t, sm.s.NextWake().IsZero(), "no loop")
			require.Equal(t, 1, sm.logged(LogAuthorized))
		})
	}
}

func TestRecoveryAfterFailures(t *testing.T) {
	t.Parallel()
	for _, failures := range []int{1, 2, 5, 23} {
		t.Run(fmt.Sprintf("%d failures", failures), func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, defaults())
			for i := 0; i < failures; i++ {
				sm.attempt(EvidenceCantDoInvalidPubkey)
				require.Equal(t, StatusUnauthorized, sm.s.Status)
			}
			sm.attempt(EvidenceTookDispute)
			require.Equal(t, StatusAuthorized, sm.s.Status)
			require.Equal(t, failures, sm.count(AuditAttempt))
			require.Equal(t, 1, sm.count(AuditRecovered), "exactly one recovered event")
			require.Equal(t, 0, sm.count(AuditTerminated))
			require.Equal(t, []map[string]any{{"attempt": float64(failures + 1)}}, sm.payloads(AuditRecovered))
			for i, p := range sm.payloads(AuditAttempt) {
				require.Equal(t, float64(i+1), p["attempt"])
				require.Contains(t, p["error"], "cant_do_invalid_pubkey")
				require.Len(t, p, 2)
			}
			require.Equal(t, 1, sm.logged(LogEnteringLoop))
			require.Equal(t, failures-1, sm.logged(LogAttemptFail))
			require.Equal(t, 1, sm.logged(LogRecovered))
			require.True(t, sm.s.NextWake().IsZero(), "the loop stopped")
		})
	}
}

func TestTerminationAtMaxAttempts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxAttempts int
		attempts    int // that run before the cycle terminates
		wantCum     float64
	}{
		// The reference: with the defaults attempt 24 happens at 64 980 s.
		{"defaults", 24, 24, 64980},
		{"three", 3, 3, 60 + 120},
		// The bounds are checked only after a retry: attempt 2 still runs
		// (the reference's loop checks them after its first sleep).
		{"one", 1, 2, 60},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := defaults()
			cfg.MaxAttempts = tc.maxAttempts
			sm := newSim(t, cfg)
			for i := 0; i < tc.attempts; i++ {
				require.NotEqual(t, StatusTerminated, sm.s.Status)
				sm.attempt(EvidenceNoReply)
			}
			require.Equal(t, StatusTerminated, sm.s.Status)
			require.Equal(t, tc.attempts, sm.count(AuditAttempt), "one attempt row per attempt that ran")
			require.Equal(t, []map[string]any{{"attempt": float64(tc.attempts), "cumulative_secs": tc.wantCum}},
				sm.payloads(AuditTerminated), "the terminated payload reports the last attempt that ran")
			require.Equal(t, 0, sm.count(AuditRecovered))
			require.Equal(t, 1, sm.logged(LogTerminated))
			require.True(t, sm.s.NextWake().IsZero())

			// Nothing more happens, whatever time passes or is reported.
			sm.now = sm.now.Add(48 * time.Hour)
			require.False(t, sm.apply(Tick{}).Changed)
			require.False(t, sm.apply(LossReported{Reason: "x"}).Changed)
			require.False(t, sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now)}).Changed)
			require.Equal(t, StatusTerminated, sm.s.Status)
			require.Equal(t, 1, sm.count(AuditTerminated))
		})
	}
}

func TestTerminationByCumulativeTime(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MaxTotal = 200 * time.Second
	sm := newSim(t, cfg)
	// Waits: 60 (cum 60, attempt 2), 120 (cum 180, attempt 3), 240 (cum
	// 420 >= 200, attempt 4) -> terminated after attempt 4's row.
	for i := 0; i < 4; i++ {
		require.NotEqual(t, StatusTerminated, sm.s.Status, "attempt %d", i+1)
		sm.attempt(EvidenceCantDoNotAuthorized)
	}
	require.Equal(t, StatusTerminated, sm.s.Status)
	require.Equal(t, 4, sm.count(AuditAttempt))
	require.Equal(t, []map[string]any{{"attempt": float64(4), "cumulative_secs": float64(420)}}, sm.payloads(AuditTerminated))
	// The terminated row follows the last attempt row.
	require.Equal(t, AuditAttempt, sm.audits[len(sm.audits)-2].Kind())
	require.Equal(t, AuditTerminated, sm.audits[len(sm.audits)-1].Kind())
}

func TestBackoffSequence(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	want := []int{60, 120, 240, 480, 960, 1920, 3600, 3600, 3600}
	var got []int
	for range want {
		sm.attempt(EvidenceCantDoInvalidPubkey)
		got = append(got, int(sm.s.NextAttemptAt.Sub(sm.s.LastAttemptAt)/time.Second))
	}
	require.Equal(t, want, got)

	cfg := defaults()
	for n, w := range want {
		require.Equal(t, time.Duration(w)*time.Second, cfg.Delay(n+1))
	}
	require.Equal(t, cfg.MaxInterval, cfg.Delay(1000), "no overflow")
}

func TestCumulativeWaitCountsScheduledWaits(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	sm.fail1()
	sm.attempt(EvidenceNoReply)
	require.Equal(t, 60*time.Second, sm.s.CumulativeWait)
	// The loop runs late (a failover): lateness is not waiting.
	sm.now = sm.s.NextAttemptAt.Add(10 * time.Minute)
	sm.attempt(EvidenceNoReply)
	require.Equal(t, 180*time.Second, sm.s.CumulativeWait)
}

func TestNodeUnreachableFailsTheAttempt(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	require.True(t, sm.apply(Tick{}).CheckNode)
	r := sm.apply(NodeChecked{Err: "no kind 38385 info event from the node"})
	require.Equal(t, AttemptFailed, r.Attempt)
	require.Equal(t, StatusUnauthorized, sm.s.Status)
	require.Equal(t, EvidenceNodeUnreachable, sm.s.Evidence.Kind)
	require.Equal(t, []map[string]any{{"attempt": float64(1), "error": "mostro node check: no kind 38385 info event from the node"}},
		sm.payloads(AuditAttempt))
	require.False(t, sm.s.Probe.Open(), "no probe without a reachable node")
	require.Equal(t, t0.Add(60*time.Second), sm.s.NextAttemptAt)
}

func TestLossWhileAuthorizedStartsFreshCycle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   func(sm *sim) Input
		kind EvidenceKind
	}{
		{"loss reported", func(*sim) Input { return LossReported{Reason: "mostro revoked us", DisputeID: "d-9"} }, EvidenceLossReported},
		{"take refused invalid_pubkey", func(sm *sim) Input { return TakeObserved{Evidence: ev(EvidenceCantDoInvalidPubkey, sm.now)} }, EvidenceCantDoInvalidPubkey},
		{"take refused not_authorized", func(sm *sim) Input { return TakeObserved{Evidence: ev(EvidenceCantDoNotAuthorized, sm.now)} }, EvidenceCantDoNotAuthorized},
		{"take unanswered", func(sm *sim) Input { return TakeObserved{Evidence: ev(EvidenceNoReply, sm.now)} }, EvidenceNoReply},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, defaults())
			// A first cycle that recovered after 3 failures.
			for range 3 {
				sm.attempt(EvidenceNoReply)
			}
			sm.attempt(EvidenceTookDispute)
			require.Equal(t, StatusAuthorized, sm.s.Status)
			before := len(sm.audits)

			sm.now = sm.now.Add(time.Hour)
			r := sm.apply(tc.in(sm))
			require.True(t, r.Transitioned())
			require.Equal(t, StatusUnauthorized, sm.s.Status)
			require.Equal(t, tc.kind, sm.s.Evidence.Kind)
			require.Equal(t, 1, sm.s.Attempt, "a fresh cycle: the loss is its attempt 1")
			require.Zero(t, sm.s.CumulativeWait)
			require.Equal(t, sm.now.Add(60*time.Second), sm.s.NextAttemptAt, "the fresh cycle waits the initial interval")
			require.Len(t, sm.audits, before+1)
			require.Equal(t, AuditAttempt, sm.audits[before].Kind())

			// And it is bounded like the first: it recovers or terminates.
			sm.attempt(EvidenceTookDispute)
			require.Equal(t, StatusAuthorized, sm.s.Status)
			require.Equal(t, []map[string]any{{"attempt": float64(4)}, {"attempt": float64(2)}}, sm.payloads(AuditRecovered))
		})
	}
}

func TestReportsWhileNotAuthorizedChangeNothing(t *testing.T) {
	t.Parallel()
	for _, status := range []Status{StatusUnauthorized, StatusTerminated} {
		t.Run(status.String(), func(t *testing.T) {
			t.Parallel()
			cfg := defaults()
			if status == StatusTerminated {
				cfg.MaxAttempts = 1
			}
			sm := newSim(t, cfg)
			sm.attempt(EvidenceNoReply)
			if status == StatusTerminated {
				sm.attempt(EvidenceNoReply) // attempt 1 never terminates
			}
			require.Equal(t, status, sm.s.Status)
			before := sm.s
			sm.now = sm.now.Add(10 * time.Second)

			for _, in := range []Input{
				LossReported{Reason: "again"},
				TakeObserved{Evidence: ev(EvidenceCantDoInvalidPubkey, sm.now)},
				TakeObserved{Evidence: ev(EvidenceCantDoOther, sm.now)},
			} {
				r := sm.apply(in)
				require.False(t, r.Changed, "%T", in)
				require.Empty(t, r.Audits)
			}
			require.Equal(t, before.Status, sm.s.Status)
			require.Equal(t, before.Attempt, sm.s.Attempt)
			require.Equal(t, before.NextAttemptAt, sm.s.NextAttemptAt)
			require.Equal(t, before.Version, sm.s.Version)
		})
	}
}

func TestFreshAgainstEvidenceIsUsedWithoutProbe(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	sm.fail1()
	sm.now = sm.now.Add(10 * time.Second)
	sm.apply(TakeObserved{Evidence: ev(EvidenceCantDoNotAuthorized, sm.now)})
	sm.advanceToWake()
	require.True(t, sm.apply(Tick{}).CheckNode)
	r := sm.apply(NodeChecked{Info: NodeInfo{ProtocolVersion: 1}})
	require.Equal(t, AttemptFailed, r.Attempt)
	require.False(t, sm.s.Probe.Open(), "fresh evidence: no probe needed")
	require.Equal(t, EvidenceCantDoNotAuthorized, sm.s.Evidence.Kind)
	require.Equal(t, 2, sm.s.Attempt)

	// The same observation is stale for attempt 3: a probe is granted.
	sm.advanceToWake()
	sm.nodeOK()
	require.True(t, sm.s.Probe.Open())
}

func TestFreshProofBringsTheNextAttemptForward(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	sm.fail1()
	sm.attempt(EvidenceNoReply) // attempt 2; next wait 120 s
	due := sm.s.NextAttemptAt
	sm.now = sm.now.Add(30 * time.Second)
	r := sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now)})
	require.True(t, r.Changed)
	require.Equal(t, StatusUnauthorized, sm.s.Status, "recovery still goes through an attempt")
	require.Equal(t, sm.now, sm.s.NextAttemptAt)
	require.True(t, sm.s.NextAttemptAt.Before(due))

	sm.nodeOK()
	require.Equal(t, StatusAuthorized, sm.s.Status)
	require.Equal(t, []map[string]any{{"attempt": float64(3)}}, sm.payloads(AuditRecovered))
	require.Equal(t, 90*time.Second, sm.s.CumulativeWait, "60 s, then the 30 s actually waited")
}

func TestProbeExpiry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		claim    bool
		wantKind EvidenceKind
		wait     time.Duration
	}{
		{"unclaimed: no eligible dispute or no prober", false, EvidenceProbeUnclaimed, 60 * time.Second},
		{"claimed but never answered", true, EvidenceProbeUnanswered, 45 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, defaults())
			sm.fail1()
			sm.advanceToWake()
			sm.nodeOK()
			id := sm.s.Probe.ID
			require.Equal(t, sm.now.Add(60*time.Second), sm.s.Probe.Deadline)
			if tc.claim {
				sm.now = sm.now.Add(50 * time.Second)
				require.NoError(t, sm.apply(ClaimProbe{ProbeID: id, DisputeID: "d-7", ClaimerID: "replica-a"}).Err)
				require.Equal(t, sm.now.Add(45*time.Second), sm.s.Probe.Deadline, "a claim gets ClaimWait for its outcome")
			}
			sm.now = sm.s.Probe.Deadline.Add(-time.Millisecond)
			require.False(t, sm.apply(Tick{}).Changed, "bounded, not early")
			sm.now = sm.s.Probe.Deadline
			r := sm.apply(Tick{})
			require.Equal(t, AttemptFailed, r.Attempt)
			require.Equal(t, tc.wantKind, sm.s.Evidence.Kind)
			require.Equal(t, 2, sm.s.Attempt)
			require.False(t, sm.s.Probe.Open())
			require.Equal(t, 2, sm.count(AuditAttempt))
			require.Contains(t, sm.payloads(AuditAttempt)[1]["error"], "probe "+id)

			// A late answer to the expired probe is an ordinary observation.
			sm.now = sm.now.Add(time.Second)
			r = sm.apply(TakeObserved{ProbeID: id, Evidence: ev(EvidenceTookDispute, sm.now)})
			require.Equal(t, NoAttempt, r.Attempt)
			require.Equal(t, sm.now, sm.s.NextAttemptAt, "fresh proof: next attempt now")
		})
	}
}

func TestStandingProbeIsReplacedWhenClaimedAndUnanswered(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	sm.nodeOK()
	first := sm.s.Probe.ID
	require.NoError(t, sm.apply(ClaimProbe{ProbeID: first, DisputeID: "d-1", ClaimerID: "replica-a"}).Err)
	require.Equal(t, "d-1", sm.s.Probe.DisputeID)
	sm.now = sm.s.Probe.Deadline
	r := sm.apply(Tick{})
	require.True(t, r.Changed)
	require.Equal(t, NoAttempt, r.Attempt, "nothing learned, nothing counted")
	require.Equal(t, StatusUnknown, sm.s.Status)
	require.NotEqual(t, first, sm.s.Probe.ID)
	require.Empty(t, sm.s.Probe.DisputeID)
	require.True(t, sm.s.Probe.Deadline.IsZero())
	require.Empty(t, sm.audits)
	require.Equal(t, 1, sm.s.Attempt)
}

func TestInconclusiveProbeOutcome(t *testing.T) {
	t.Parallel()
	t.Run("unknown grants a new probe", func(t *testing.T) {
		t.Parallel()
		sm := newSim(t, defaults())
		sm.nodeOK()
		first := sm.s.Probe.ID
		sm.apply(TakeObserved{ProbeID: first, Evidence: ev(EvidenceCantDoOther, sm.now)})
		require.Equal(t, StatusUnknown, sm.s.Status)
		require.True(t, sm.s.Probe.Open())
		require.NotEqual(t, first, sm.s.Probe.ID)
		require.Empty(t, sm.audits)
	})
	t.Run("unauthorized fails the attempt", func(t *testing.T) {
		t.Parallel()
		sm := newSim(t, defaults())
		sm.fail1()
		sm.attempt(EvidenceCantDoOther)
		require.Equal(t, StatusUnauthorized, sm.s.Status)
		require.Equal(t, 2, sm.count(AuditAttempt))
		require.Contains(t, sm.payloads(AuditAttempt)[1]["error"], "inconclusive probe outcome")
	})
	t.Run("authorized ignores it", func(t *testing.T) {
		t.Parallel()
		sm := newSim(t, defaults())
		sm.attempt(EvidenceTookDispute)
		r := sm.apply(TakeObserved{Evidence: ev(EvidenceCantDoOther, sm.now)})
		require.False(t, r.Changed)
		require.True(t, r.Persist, "the observation is remembered")
		require.Equal(t, StatusAuthorized, sm.s.Status)
	})
}

func TestClaimProbe(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	require.ErrorIs(t, sm.apply(ClaimProbe{ProbeID: "nope", DisputeID: "d", ClaimerID: "a"}).Err, ErrProbeNotOpen)
	sm.nodeOK()
	id := sm.s.Probe.ID
	require.ErrorIs(t, sm.apply(ClaimProbe{ProbeID: id, DisputeID: "d-1"}).Err, ErrNoClaimer, "an anonymous claim is refused")
	require.Empty(t, sm.s.Probe.DisputeID)
	tests := []struct {
		name    string
		claim   ClaimProbe
		wantErr error
		changed bool
	}{
		{"first claim wins", ClaimProbe{ProbeID: id, DisputeID: "d-1", ClaimerID: "replica-a"}, nil, true},
		{"repeat by the winner", ClaimProbe{ProbeID: id, DisputeID: "d-1", ClaimerID: "replica-a"}, nil, false},
		// Both replicas' Pick returned d-1: only one of them may take it.
		{"another claimer for the same dispute loses", ClaimProbe{ProbeID: id, DisputeID: "d-1", ClaimerID: "replica-b"}, ErrProbeClaimed, false},
		{"the winner for another dispute loses", ClaimProbe{ProbeID: id, DisputeID: "d-2", ClaimerID: "replica-a"}, ErrProbeClaimed, false},
		{"another dispute loses", ClaimProbe{ProbeID: id, DisputeID: "d-2", ClaimerID: "replica-b"}, ErrProbeClaimed, false},
		{"an anonymous repeat loses", ClaimProbe{ProbeID: id, DisputeID: "d-1"}, ErrNoClaimer, false},
		{"stale probe id", ClaimProbe{ProbeID: "old", DisputeID: "d-3", ClaimerID: "replica-a"}, ErrProbeNotOpen, false},
	}
	for _, tc := range tests { // sequential: each builds on the previous
		r := sm.apply(tc.claim)
		require.ErrorIs(t, r.Err, tc.wantErr, tc.name)
		require.Equal(t, tc.changed, r.Changed, tc.name)
		require.Equal(t, "d-1", sm.s.Probe.DisputeID, tc.name)
		require.Equal(t, "replica-a", sm.s.Probe.ClaimerID, tc.name)
	}
}

func TestResetTerminated(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MaxAttempts = 2
	sm := newSim(t, cfg)
	require.ErrorIs(t, sm.apply(Reset{}).Err, ErrNotTerminated)
	sm.attempt(EvidenceNoReply)
	require.ErrorIs(t, sm.apply(Reset{}).Err, ErrNotTerminated)
	sm.attempt(EvidenceNoReply)
	require.Equal(t, StatusTerminated, sm.s.Status)

	sm.now = sm.now.Add(5 * time.Hour)
	r := sm.apply(Reset{})
	require.NoError(t, r.Err)
	require.Equal(t, StatusUnauthorized, sm.s.Status)
	require.Equal(t, 0, sm.s.Attempt)
	require.Zero(t, sm.s.CumulativeWait)
	require.Equal(t, sm.now, sm.s.NextAttemptAt, "attempt 1 at once")
	require.Equal(t, 1, sm.logged(LogReset))

	// A fresh bounded cycle: two more attempts, one more terminated row.
	sm.attempt(EvidenceNoReply)
	require.Equal(t, StatusUnauthorized, sm.s.Status)
	require.Zero(t, sm.s.CumulativeWait, "attempt 1 of a cycle does not wait")
	sm.attempt(EvidenceNoReply)
	require.Equal(t, StatusTerminated, sm.s.Status)
	require.Equal(t, []map[string]any{
		{"attempt": float64(2), "cumulative_secs": float64(60)},
		{"attempt": float64(2), "cumulative_secs": float64(60)},
	}, sm.payloads(AuditTerminated))
}

func TestResetUsesEvidenceObservedWhileTerminated(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MaxAttempts = 1
	sm := newSim(t, cfg)
	sm.attempt(EvidenceNoReply)
	sm.attempt(EvidenceNoReply) // attempt 1 never terminates
	require.Equal(t, StatusTerminated, sm.s.Status)
	sm.now = sm.now.Add(time.Hour)
	sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now)})
	require.Equal(t, StatusTerminated, sm.s.Status)
	sm.apply(Reset{})
	require.True(t, sm.apply(Tick{}).CheckNode)
	sm.apply(NodeChecked{Info: NodeInfo{ProtocolVersion: 2}})
	require.Equal(t, StatusAuthorized, sm.s.Status)
	require.Equal(t, []map[string]any{{"attempt": float64(1)}}, sm.payloads(AuditRecovered))
}

func TestNodeCheckIgnoredWhenStateMovedOn(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	require.True(t, sm.apply(Tick{}).CheckNode)
	// While the node was being checked, a take proved authorization.
	sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now)})
	require.Equal(t, StatusAuthorized, sm.s.Status)
	r := sm.apply(NodeChecked{Err: "late failure"})
	require.False(t, r.Changed)
	require.Equal(t, StatusAuthorized, sm.s.Status)
	require.Empty(t, sm.audits)
}

func TestStaleObservationIsNotFresh(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	sm.fail1()
	// A take observed before attempt 1 ended, reported late.
	sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, sm.now.Add(-time.Minute))})
	require.Equal(t, StatusUnauthorized, sm.s.Status)
	sm.advanceToWake()
	sm.nodeOK()
	require.True(t, sm.s.Probe.Open(), "stale proof is not used: a probe is granted")
}

func TestErrorsLeaveStateUntouched(t *testing.T) {
	t.Parallel()
	sm := newSim(t, defaults())
	before := sm.s
	r := sm.m.Step(sm.s, Reset{}, sm.now)
	require.Error(t, r.Err)
	require.Equal(t, before, r.State)
	require.False(t, r.Persist)
	require.Empty(t, r.Audits)
}

func TestLogLevels(t *testing.T) {
	t.Parallel()
	cfg := defaults()
	cfg.MaxAttempts = 2
	sm := newSim(t, cfg)
	sm.attempt(EvidenceNoReply)
	sm.attempt(EvidenceNoReply)
	levels := map[string]slog.Level{}
	for _, l := range sm.logs {
		levels[l.Msg] = l.Level
	}
	require.Equal(t, slog.LevelWarn, levels[LogEnteringLoop])
	require.Equal(t, slog.LevelWarn, levels[LogAttemptFail])
	require.Equal(t, slog.LevelError, levels[LogTerminated])
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, defaults().Validate())
	bad := defaults()
	bad.MaxInterval = time.Second
	require.Error(t, bad.Validate())
	bad = defaults()
	bad.MaxAttempts = 0
	require.Error(t, bad.Validate())
}

func TestAgainstEvidenceOlderThanTheProofIsStale(t *testing.T) {
	t.Parallel()
	for _, kind := range []EvidenceKind{EvidenceNoReply, EvidenceCantDoInvalidPubkey, EvidenceCantDoNotAuthorized} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			sm := newSim(t, defaults())
			sm.nodeOK()
			// A take accepted at t+10s proves registration.
			sm.now = t0.Add(10 * time.Second)
			sm.apply(TakeObserved{ProbeID: sm.s.Probe.ID, Evidence: ev(EvidenceTookDispute, sm.now)})
			require.Equal(t, StatusAuthorized, sm.s.Status)
			proof := sm.s.Evidence

			// A take observed at t+1s is reported late (a no_reply waits out
			// its timeout): it is older than the proof and changes nothing.
			sm.now = t0.Add(20 * time.Second)
			r := sm.apply(TakeObserved{Evidence: ev(kind, t0.Add(time.Second))})
			require.NoError(t, r.Err)
			require.True(t, r.Stale)
			require.False(t, r.Changed)
			require.Equal(t, StatusAuthorized, sm.s.Status)
			require.Equal(t, proof, sm.s.Evidence)
			require.Equal(t, EvidenceTookDispute, sm.s.Observation.Kind, "the newest observation stays the proof")
			require.Empty(t, sm.audits)
			require.Equal(t, 1, sm.logged(LogStaleAgainst))
			require.Zero(t, sm.logged(LogLost))

			// Older proof does not replace newer proof either.
			r = sm.apply(TakeObserved{Evidence: ev(EvidenceTookDispute, t0.Add(5*time.Second))})
			require.False(t, r.Changed)
			require.Equal(t, proof, sm.s.Evidence)

			// Evidence against observed after the proof is still a loss.
			r = sm.apply(TakeObserved{Evidence: ev(kind, t0.Add(15*time.Second))})
			require.False(t, r.Stale)
			require.Equal(t, StatusUnauthorized, sm.s.Status)
			require.Equal(t, kind, sm.s.Evidence.Kind)
			require.Equal(t, 1, sm.count(AuditAttempt))
		})
	}
}

// max_attempts = 1: the reference checks the bounds only after a loop
// attempt (after its first sleep), so attempt 2 still runs and the cycle
// terminates there with 60 s waited. Every way a cycle starts behaves so.
func TestMaxAttemptsOneStillRunsAttemptTwo(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// start brings the machine to attempt 1 of a cycle, failed.
		start func(sm *sim)
	}{
		{"initial check fails", func(sm *sim) { sm.attempt(EvidenceCantDoInvalidPubkey) }},
		{"loss while authorized", func(sm *sim) {
			sm.attempt(EvidenceTookDispute)
			require.Equal(sm.t, StatusAuthorized, sm.s.Status)
			sm.now = sm.now.Add(time.Hour)
			sm.apply(LossReported{Reason: "refused"})
		}},
		{"operator reset", func(sm *sim) {
			sm.attempt(EvidenceNoReply)
			sm.attempt(EvidenceNoReply)
			require.Equal(sm.t, StatusTerminated, sm.s.Status)
			sm.apply(Reset{})
			sm.attempt(EvidenceNoReply)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := defaults()
			cfg.MaxAttempts = 1
			sm := newSim(t, cfg)
			tc.start(sm)
			terminatedBefore := sm.count(AuditTerminated)
			require.Equal(t, StatusUnauthorized, sm.s.Status, "attempt 1 does not terminate the cycle")
			require.Equal(t, 1, sm.s.Attempt)
			require.Equal(t, sm.now.Add(60*time.Second), sm.s.NextAttemptAt, "attempt 2 is scheduled after the initial interval")

			sm.attempt(EvidenceNoReply)
			require.Equal(t, StatusTerminated, sm.s.Status)
			require.Equal(t, 2, sm.s.Attempt)
			p := sm.payloads(AuditTerminated)
			require.Len(t, p, terminatedBefore+1)
			require.Equal(t, map[string]any{"attempt": float64(2), "cumulative_secs": float64(60)}, p[len(p)-1])
		})
	}

	t.Run("a budget shorter than the first wait", func(t *testing.T) {
		t.Parallel()
		cfg := defaults()
		cfg.MaxTotal = time.Second
		sm := newSim(t, cfg)
		sm.attempt(EvidenceNoReply)
		require.Equal(t, StatusUnauthorized, sm.s.Status)
		sm.attempt(EvidenceNoReply)
		require.Equal(t, StatusTerminated, sm.s.Status)
		require.Equal(t, []map[string]any{{"attempt": float64(2), "cumulative_secs": float64(60)}}, sm.payloads(AuditTerminated))
	})
}

func TestStartedRechecksAnOldProof(t *testing.T) {
	t.Parallel()
	// authorized brings the machine to Authorized, proved at t0+2s.
	authorized := func(t *testing.T) *sim {
		sm := newSim(t, defaults())
		sm.attempt(EvidenceTookDispute)
		require.Equal(t, StatusAuthorized, sm.s.Status)
		return sm
	}
	t.Run("a recent proof stands", func(t *testing.T) {
		t.Parallel()
		sm := authorized(t)
		sm.now = sm.s.Evidence.ObservedAt.Add(time.Hour - time.Second)
		r := sm.apply(Started{})
		require.False(t, r.Changed)
		require.False(t, r.Persist)
		require.Equal(t, StatusAuthorized, sm.s.Status)
		require.Equal(t, 1, sm.logged(LogContinues))
	})
	t.Run("an old proof is re-checked as on a fresh installation", func(t *testing.T) {
		t.Parallel()
		sm := authorized(t)
		proof := sm.s.Evidence
		sm.now = proof.ObservedAt.Add(time.Hour)
		r := sm.apply(Started{})
		require.True(t, r.Changed)
		require.True(t, r.Transitioned())
		require.Equal(t, StatusUnknown, sm.s.Status)
		require.Equal(t, sm.now, sm.s.Since)
		require.Equal(t, 0, sm.s.Attempt)
		require.Equal(t, proof, sm.s.Evidence, "the old proof stays the evidence until the check says more")
		require.Empty(t, r.Audits, "a re-check is not a failure")
		require.Equal(t, 1, sm.logged(LogRecheck))
		require.True(t, sm.s.AttemptDue(sm.now), "the initial check is due at once")

		// The old proof is not fresh evidence: the check grants a standing
		// probe, and a new take settles it without any audit row.
		sm.nodeOK()
		require.Equal(t, StatusUnknown, sm.s.Status)
		require.True(t, sm.s.Probe.Open())
		require.True(t, sm.s.Probe.Deadline.IsZero(), "standing: a quiet node is not a failure")
		sm.now = sm.now.Add(time.Minute)
		sm.apply(TakeObserved{ProbeID: sm.s.Probe.ID, Evidence: ev(EvidenceTookDispute, sm.now)})
		require.Equal(t, StatusAuthorized, sm.s.Status)
		require.Empty(t, sm.audits)

		// Started again right away (another replica): nothing changes.
		require.False(t, sm.apply(Started{}).Changed)
	})
	t.Run("a proof without a time is old", func(t *testing.T) {
		t.Parallel()
		sm := authorized(t)
		sm.s.Evidence.ObservedAt = time.Time{}
		require.True(t, sm.apply(Started{}).Changed)
		require.Equal(t, StatusUnknown, sm.s.Status)
	})
	t.Run("an old loss found at the re-check starts a cycle", func(t *testing.T) {
		t.Parallel()
		sm := authorized(t)
		sm.now = sm.now.Add(2 * time.Hour)
		sm.apply(Started{})
		require.True(t, sm.apply(Tick{}).CheckNode)
		sm.apply(NodeChecked{Err: "unsupported protocol version 3"})
		require.Equal(t, StatusUnauthorized, sm.s.Status)
		require.Equal(t, []map[string]any{{"attempt": float64(1), "error": "mostro node check: unsupported protocol version 3"}},
			sm.payloads(AuditAttempt))
	})
	for _, status := range []Status{StatusUnknown, StatusUnauthorized, StatusTerminated} {
		t.Run(status.String()+" continues", func(t *testing.T) {
			t.Parallel()
			cfg := defaults()
			cfg.MaxAttempts = 2
			sm := newSim(t, cfg)
			switch status {
			case StatusUnknown:
				sm.nodeOK() // a standing probe
			case StatusUnauthorized:
				sm.attempt(EvidenceNoReply)
			case StatusTerminated:
				sm.attempt(EvidenceNoReply)
				sm.attempt(EvidenceNoReply)
			}
			require.Equal(t, status, sm.s.Status)
			before := sm.s
			sm.now = sm.now.Add(48 * time.Hour)
			r := sm.apply(Started{})
			require.False(t, r.Changed)
			require.False(t, r.Persist)
			require.Equal(t, before, sm.s)
			require.Equal(t, 1, sm.logged(LogContinues))
		})
	}
}

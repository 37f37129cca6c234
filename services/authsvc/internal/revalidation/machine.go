package revalidation

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/serbero/serbero/pkg/audit"
)

// The audit event kinds the machine writes (mediation_events.kind, through
// pkg/audit).
const (
	AuditAttempt    = audit.KindAuthRetryAttempt
	AuditRecovered  = audit.KindAuthRetryRecovered
	AuditTerminated = audit.KindAuthRetryTerminated
)

// The log messages, the reference's wording where it has one.
const (
	LogEnteringLoop = "solver authorization check failed; entering retry loop"
	LogAttemptFail  = "solver auth retry attempt failed"
	LogRecovered    = "solver auth retry recovered"
	LogTerminated   = "solver auth retry loop terminated without recovery"
	LogAuthorized   = "solver authorization confirmed"
	LogLost         = "solver authorization lost; starting a fresh revalidation cycle"
	LogReset        = "solver auth retry loop reset by operator; starting a fresh revalidation cycle"
	LogProbeGranted = "solver authorization probe granted"
	LogStaleAgainst = "ignoring stale evidence against solver authorization: observed before the current proof"
	LogRecheck      = "solver authorization proof is old; re-checking on start"
	LogContinues    = "solver authorization state continues after start"
)

// Errors returned in Result.Err for inputs that are refused.
var (
	// ErrNotTerminated: ResetTerminated outside StatusTerminated.
	ErrNotTerminated = errors.New("the revalidation cycle is not terminated")
	// ErrProbeNotOpen: a claim for a probe that is not open (expired,
	// answered, or never granted).
	ErrProbeNotOpen = errors.New("the probe is not open")
	// ErrProbeClaimed: the probe was already claimed by another claimer
	// or for another dispute.
	ErrProbeClaimed = errors.New("the probe was already claimed")
	// ErrNoClaimer: a claim without a claimer identity (it could not be
	// told apart from any other anonymous claim).
	ErrNoClaimer = errors.New("a probe claim needs a claimer id")
)

// Config holds the cycle's knobs. The first four are the reference's
// [mediation].solver_auth_retry_* keys.
type Config struct {
	// InitialInterval is the first wait (solver_auth_retry_initial_seconds).
	InitialInterval time.Duration
	// MaxInterval caps the doubling wait
	// (solver_auth_retry_max_interval_seconds).
	MaxInterval time.Duration
	// MaxTotal ends the cycle once the summed waits reach it
	// (solver_auth_retry_max_total_seconds).
	MaxTotal time.Duration
	// MaxAttempts ends the cycle once this many attempts ran
	// (solver_auth_retry_max_attempts).
	MaxAttempts int
	// ProbeWait is how long an attempt without fresh evidence waits for a
	// prober to claim its probe.
	ProbeWait time.Duration
	// ClaimWait is how long a claimed probe waits for its outcome.
	ClaimWait time.Duration
	// RecheckAfter is the age past which the proof of an Authorized state
	// is re-checked when a replica starts (see Started).
	RecheckAfter time.Duration
}

// Validate checks the knobs.
func (c Config) Validate() error {
	switch {
	case c.InitialInterval <= 0:
		return errors.New("initial interval must be positive")
	case c.MaxInterval < c.InitialInterval:
		return errors.New("max interval must be at least the initial interval")
	case c.MaxTotal <= 0:
		return errors.New("max total must be positive")
	case c.MaxAttempts <= 0:
		return errors.New("max attempts must be positive")
	case c.ProbeWait <= 0 || c.ClaimWait <= 0:
		return errors.New("probe waits must be positive")
	case c.RecheckAfter <= 0:
		return errors.New("the start re-check age must be positive")
	}
	return nil
}

// Delay is the wait after failed attempt n (n >= 1): InitialInterval
// doubled n-1 times, capped at MaxInterval (60, 120, …, 3600, 3600).
func (c Config) Delay(n int) time.Duration {
	d := c.InitialInterval
	for i := 1; i < n && d < c.MaxInterval; i++ {
		d *= 2
	}
	return min(d, c.MaxInterval)
}

// Machine is the pure transition function plus its configuration. It does
// no I/O and reads no clock: time comes with every call.
type Machine struct {
	// Config holds the knobs.
	Config Config
	// NewID returns a fresh probe id.
	NewID func() string
}

// Input is one event fed to the machine.
type Input interface{ input() }

// Tick says time has passed: it reports a due attempt (Result.CheckNode)
// and expires probes.
type Tick struct{}

// NodeInfo is what the node's kind 38385 info event says.
type NodeInfo struct {
	// ProtocolVersion is 1 or 2.
	ProtocolVersion int
	// MostroVersion is the node's software version, if advertised.
	MostroVersion string
}

// NodeChecked carries the result of the node check of a due attempt.
type NodeChecked struct {
	// Info is the node's info when Err is empty.
	Info NodeInfo
	// Err says why the node is unreachable or unsupported.
	Err string
}

// TakeObserved reports the outcome of a real take.
type TakeObserved struct {
	// ProbeID is the probe the take answers, if any.
	ProbeID string
	// Evidence is the classified outcome.
	Evidence Evidence
}

// ClaimProbe claims the open probe for a dispute.
type ClaimProbe struct {
	// ProbeID is the claimed probe.
	ProbeID string
	// DisputeID is the dispute about to be taken.
	DisputeID string
	// ClaimerID identifies the claiming prober (required). Only the
	// winner repeating its own claim is granted again.
	ClaimerID string
}

// LossReported says a caller saw authorization disappear.
type LossReported struct {
	// Reason is the caller's explanation (no secrets, no message text).
	Reason string
	// DisputeID is the dispute involved, if any.
	DisputeID string
}

// Reset is the operator's reset of a terminated cycle.
type Reset struct{}

// Started says a replica started: an Authorized state whose proof was
// observed RecheckAfter ago or longer goes back to Unknown with its initial
// check due at once, as on a fresh installation. Other states continue as
// they are (see docs/authorization.md#restarts).
type Started struct{}

func (Tick) input()         {}
func (NodeChecked) input()  {}
func (TakeObserved) input() {}
func (ClaimProbe) input()   {}
func (LossReported) input() {}
func (Reset) input()        {}
func (Started) input()      {}

// LogRecord is one log line to emit once the new state is committed.
type LogRecord struct {
	// Level is the slog level.
	Level slog.Level
	// Msg is the message.
	Msg string
	// Attrs are key/value pairs.
	Attrs []any
}

// AttemptOutcome says how an attempt that finished in this step ended.
type AttemptOutcome int

// The attempt outcomes.
const (
	// NoAttempt: no attempt finished.
	NoAttempt AttemptOutcome = iota
	// AttemptSucceeded: the attempt found proof of registration.
	AttemptSucceeded
	// AttemptFailed: it did not.
	AttemptFailed
)

// Result is the outcome of one step.
type Result struct {
	// State is the new state (Version already bumped when Changed).
	State State
	// Changed reports a change of the public answer.
	Changed bool
	// Persist reports that the state must be written (Changed, or only the
	// private observation changed).
	Persist bool
	// Audits are the rows to write with the state (daemon-scoped:
	// session_id and the bundle columns NULL).
	Audits []audit.Payload
	// Logs are emitted after commit.
	Logs []LogRecord
	// CheckNode asks the shell to check the node and feed NodeChecked.
	CheckNode bool
	// Attempt says whether an attempt finished, and how.
	Attempt AttemptOutcome
	// Stale reports a take outcome that was evidence against authorization
	// but observed before the proof the answer rests on, so it was ignored.
	Stale bool
	// From is the status before the step (for transition metrics).
	From Status
	// Err is set when the input was refused; the state is then unchanged.
	Err error
}

// Transitioned reports a status change.
func (r Result) Transitioned() bool { return r.From != r.State.Status }

// Step applies one input at time now and returns the new state and what to
// do. It never mutates s.
func (m Machine) Step(s State, in Input, now time.Time) Result {
	st := &step{m: m, old: s, s: s, now: now, res: Result{From: s.Status}}
	switch in := in.(type) {
	case Tick:
		st.tick()
	case NodeChecked:
		st.nodeChecked(in)
	case TakeObserved:
		st.takeObserved(in)
	case ClaimProbe:
		st.claimProbe(in)
	case LossReported:
		st.lossReported(in)
	case Reset:
		st.reset()
	case Started:
		st.started()
	default:
		st.res.Err = fmt.Errorf("revalidation: unknown input %T", in)
	}
	return st.finish()
}

type step struct {
	m       Machine
	old     State
	s       State
	now     time.Time
	res     Result
	changed bool
	persist bool
}

func (st *step) finish() Result {
	if st.res.Err != nil {
		st.res.State = st.old
		st.res.Changed, st.res.Persist = false, false
		st.res.Audits, st.res.Logs = nil, nil
		return st.res
	}
	if st.changed {
		st.s.Version = st.old.Version + 1
	}
	st.res.State = st.s
	st.res.Changed = st.changed
	st.res.Persist = st.changed || st.persist
	return st.res
}

func (st *step) audit(p audit.Payload) {
	st.res.Audits = append(st.res.Audits, p)
}

func (st *step) log(level slog.Level, msg string, attrs ...any) {
	st.res.Logs = append(st.res.Logs, LogRecord{Level: level, Msg: msg, Attrs: attrs})
}

func (st *step) tick() {
	s := st.s
	if s.AttemptDue(st.now) {
		st.res.CheckNode = true
		return
	}
	if !s.Probe.Open() || s.Probe.Deadline.IsZero() || st.now.Before(s.Probe.Deadline) {
		return
	}
	// The probe expired.
	var ev Evidence
	if s.Probe.DisputeID == "" {
		ev = Evidence{
			Kind: EvidenceProbeUnclaimed,
			Summary: fmt.Sprintf("no take evidence: probe %s was not claimed within %s (no eligible dispute, or no mediationsvc prober running)",
				s.Probe.ID, s.Probe.Deadline.Sub(s.Probe.GrantedAt)),
			ObservedAt: st.now,
		}
	} else {
		ev = Evidence{
			Kind: EvidenceProbeUnanswered,
			Summary: fmt.Sprintf("no take evidence: probe %s was claimed for dispute %s but no outcome was reported within %s",
				s.Probe.ID, s.Probe.DisputeID, s.Probe.Deadline.Sub(s.Probe.ClaimedAt)),
			ObservedAt: st.now,
			DisputeID:  s.Probe.DisputeID,
		}
	}
	if s.Status == StatusUnknown {
		// The standing probe of the initial check: nothing was learned, so
		// nothing is counted; grant a fresh one.
		st.grantProbe(ev.Summary)
		return
	}
	st.fail(ev, ev.Summary)
}

// startAttempt numbers the attempt that starts now and adds its wait.
func (st *step) startAttempt() {
	s := &st.s
	if s.Attempt > 0 && !s.LastAttemptAt.IsZero() && s.NextAttemptAt.After(s.LastAttemptAt) {
		s.CumulativeWait += s.NextAttemptAt.Sub(s.LastAttemptAt)
	}
	s.Attempt++
	s.NextAttemptAt = time.Time{}
	st.changed = true
}

func (st *step) nodeChecked(in NodeChecked) {
	if !st.s.AttemptDue(st.now) {
		return // the state moved on while the node was checked
	}
	st.startAttempt()
	if in.Err != "" {
		ev := Evidence{Kind: EvidenceNodeUnreachable, Summary: "mostro node check: " + in.Err, ObservedAt: st.now}
		st.fail(ev, ev.Summary)
		return
	}
	if obs := st.s.Observation; st.fresh(obs) {
		switch obs.Kind.Verdict() {
		case For:
			st.succeed(obs)
			return
		case Against:
			st.fail(obs, obs.Summary)
			return
		}
	}
	summary := fmt.Sprintf("mostro node reachable (protocol v%d", in.Info.ProtocolVersion)
	if in.Info.MostroVersion != "" {
		summary += ", mostro " + in.Info.MostroVersion
	}
	summary += "); no fresh take evidence; probe granted"
	st.grantProbe(summary)
}

// grantProbe opens a probe for the attempt in flight. In StatusUnknown it
// is a standing probe (no deadline until claimed) and becomes the evidence.
func (st *step) grantProbe(summary string) {
	s := &st.s
	s.Probe = Probe{ID: st.m.NewID(), GrantedAt: st.now}
	if s.Status == StatusUnknown {
		s.Evidence = Evidence{Kind: EvidenceNodeReachable, Summary: summary, ObservedAt: st.now}
	} else {
		s.Probe.Deadline = st.now.Add(st.m.Config.ProbeWait)
	}
	st.changed = true
	st.log(slog.LevelInfo, LogProbeGranted, "probe_id", s.Probe.ID, "attempt", s.Attempt, "state", s.Status.String())
}

// fresh reports whether obs was observed after the newest attempt ended.
func (st *step) fresh(obs Evidence) bool {
	return !obs.IsZero() && obs.ObservedAt.After(st.s.LastAttemptAt)
}

// fail ends the attempt in flight (st.s.Attempt) as failed.
func (st *step) fail(ev Evidence, errText string) {
	s := &st.s
	n := s.Attempt
	s.LastAttemptAt = st.now
	s.LastError = errText
	s.Evidence = ev
	s.Probe = Probe{}
	st.changed = true
	st.res.Attempt = AttemptFailed
	st.audit(audit.AuthRetryAttempt{Attempt: n, Error: errText})
	msg := LogAttemptFail
	if n == 1 {
		msg = LogEnteringLoop
	}
	st.log(slog.LevelWarn, msg, "attempt", n, "error", errText, "evidence", ev.Kind.String())

	// The bounds are checked only after a retry, never after attempt 1 of
	// a cycle: with max_attempts = 1 attempt 2 still runs, as in the
	// reference (docs/authorization.md#the-numbers).
	if n > 1 && (n >= st.m.Config.MaxAttempts || s.CumulativeWait >= st.m.Config.MaxTotal) {
		s.Status = StatusTerminated
		s.Since = st.now
		s.NextAttemptAt = time.Time{}
		secs := int64(s.CumulativeWait / time.Second)
		st.audit(audit.AuthRetryTerminated{Attempt: n, CumulativeSecs: secs})
		st.log(slog.LevelError, LogTerminated, "attempt", n, "cumulative_secs", secs, "last_error", errText)
		return
	}
	if s.Status != StatusUnauthorized {
		s.Status = StatusUnauthorized
		s.Since = st.now
	}
	s.NextAttemptAt = st.now.Add(st.m.Config.Delay(n))
}

// succeed ends the attempt in flight as proof of registration.
func (st *step) succeed(ev Evidence) {
	s := &st.s
	n := s.Attempt
	from := s.Status
	s.Status = StatusAuthorized
	s.Since = st.now
	s.LastAttemptAt = st.now
	s.NextAttemptAt = time.Time{}
	s.LastError = ""
	s.Evidence = ev
	s.Probe = Probe{}
	st.changed = true
	st.res.Attempt = AttemptSucceeded
	if from == StatusUnknown {
		// The initial check passed: no loop, no audit row.
		st.log(slog.LevelInfo, LogAuthorized, "evidence", ev.Kind.String(), "dispute_id", ev.DisputeID)
		return
	}
	st.audit(audit.AuthRetryRecovered{Attempt: n})
	st.log(slog.LevelInfo, LogRecovered, "attempt", n, "evidence", ev.Kind.String(), "dispute_id", ev.DisputeID)
}

// freshCycleFailure starts a fresh cycle whose attempt 1 is the failure
// just observed (the initial check failing, or a loss).
func (st *step) freshCycleFailure(ev Evidence, errText string) {
	st.s.Attempt = 1
	st.s.CumulativeWait = 0
	st.s.NextAttemptAt = time.Time{}
	st.fail(ev, errText)
}

func (st *step) takeObserved(in TakeObserved) {
	ev := in.Evidence
	if ev.ObservedAt.IsZero() || ev.ObservedAt.After(st.now) {
		ev.ObservedAt = st.now
	}
	s := &st.s
	verdict := ev.Kind.Verdict()
	if verdict == Against && s.Evidence.Kind.Verdict() == For && ev.ObservedAt.Before(s.Evidence.ObservedAt) {
		// Out of date: the node accepted a take after this was observed
		// (a late report, e.g. a no_reply that waited out its timeout).
		// The evidence is proof only while Authorized: Unknown is left on
		// the first proof, and Unauthorized and Terminated judge reports
		// by freshness instead.
		st.res.Stale = true
		st.log(slog.LevelInfo, LogStaleAgainst, "evidence", ev.Kind.String(), "dispute_id", ev.DisputeID,
			"observed_at", ev.ObservedAt, "proof_observed_at", s.Evidence.ObservedAt)
		return
	}
	if s.Observation.IsZero() || !ev.ObservedAt.Before(s.Observation.ObservedAt) {
		s.Observation = ev
		st.persist = true
	}
	probeAnswer := in.ProbeID != "" && in.ProbeID == s.Probe.ID
	switch s.Status {
	case StatusUnknown:
		switch {
		case verdict == For:
			st.succeed(ev)
		case verdict == Against:
			st.freshCycleFailure(ev, ev.Summary)
		case probeAnswer:
			st.grantProbe("inconclusive probe outcome: " + ev.Summary)
		}
	case StatusUnauthorized:
		inFlight := s.Probe.Open()
		switch {
		case inFlight && (probeAnswer || (verdict != Inconclusive && st.fresh(ev))):
			switch verdict {
			case For:
				st.succeed(ev)
			case Against:
				st.fail(ev, ev.Summary)
			default:
				st.fail(ev, "inconclusive probe outcome: "+ev.Summary)
			}
		case !inFlight && verdict == For && st.fresh(ev) && ev.ObservedAt.Before(s.NextAttemptAt):
			// Fresh proof: run the next attempt now instead of waiting.
			s.NextAttemptAt = ev.ObservedAt
			st.changed = true
		}
	case StatusAuthorized:
		switch verdict {
		case For:
			if ev.ObservedAt.Before(s.Evidence.ObservedAt) {
				return // older proof: the evidence stays the newest
			}
			s.Evidence = ev
			st.changed = true
		case Against:
			st.log(slog.LevelWarn, LogLost, "evidence", ev.Kind.String(), "dispute_id", ev.DisputeID)
			st.freshCycleFailure(ev, ev.Summary)
		}
	case StatusTerminated:
		// Recorded only; an operator reset starts the next cycle, whose
		// first attempt uses this observation if it is still fresh.
	}
}

func (st *step) claimProbe(in ClaimProbe) {
	p := &st.s.Probe
	switch {
	case in.ClaimerID == "":
		st.res.Err = ErrNoClaimer
	case !p.Open() || in.ProbeID != p.ID:
		st.res.Err = ErrProbeNotOpen
	case p.DisputeID != "" && p.ClaimerID == in.ClaimerID && p.DisputeID == in.DisputeID:
		// The winner repeating its claim (e.g. its first answer was
		// lost): granted again, nothing changes. Another claimer that
		// picked the same dispute is not the winner and loses below.
	case p.DisputeID != "":
		st.res.Err = ErrProbeClaimed
	default:
		p.DisputeID = in.DisputeID
		p.ClaimerID = in.ClaimerID
		p.ClaimedAt = st.now
		p.Deadline = st.now.Add(st.m.Config.ClaimWait)
		st.changed = true
	}
}

func (st *step) lossReported(in LossReported) {
	switch st.s.Status {
	case StatusAuthorized, StatusUnknown:
		reason := in.Reason
		if reason == "" {
			reason = "no reason given"
		}
		ev := Evidence{Kind: EvidenceLossReported, Summary: "authorization loss reported: " + reason, ObservedAt: st.now, DisputeID: in.DisputeID}
		if st.s.Status == StatusAuthorized {
			st.log(slog.LevelWarn, LogLost, "evidence", ev.Kind.String(), "dispute_id", ev.DisputeID)
		}
		st.freshCycleFailure(ev, ev.Summary)
	default:
		// Unauthorized or Terminated: already not authorized; nothing changes.
	}
}

func (st *step) reset() {
	s := &st.s
	if s.Status != StatusTerminated {
		st.res.Err = ErrNotTerminated
		return
	}
	s.Status = StatusUnauthorized
	s.Since = st.now
	s.Attempt = 0
	s.CumulativeWait = 0
	s.NextAttemptAt = st.now
	st.changed = true
	st.log(slog.LevelInfo, LogReset)
}

func (st *step) started() {
	s := &st.s
	proved := s.Evidence.ObservedAt
	if s.Status != StatusAuthorized || (!proved.IsZero() && st.now.Sub(proved) < st.m.Config.RecheckAfter) {
		// Unknown, Unauthorized and Terminated continue as they are (a
		// terminated cycle waits for an operator reset), and so does a
		// recent proof.
		st.log(slog.LevelInfo, LogContinues, "state", s.Status.String(), "attempt", s.Attempt,
			"evidence", s.Evidence.Kind.String(), "evidence_observed_at", proved)
		return
	}
	// A fresh initial check: Unknown, attempt 1 due now. The old proof
	// stays the evidence until the check says more, and everything
	// observed up to now is not fresh (the check must learn something new).
	s.Status = StatusUnknown
	s.Since = st.now
	s.Attempt = 0
	s.CumulativeWait = 0
	s.NextAttemptAt = st.now
	s.LastAttemptAt = st.now
	s.LastError = ""
	s.Probe = Probe{}
	st.changed = true
	st.log(slog.LevelInfo, LogRecheck, "evidence", s.Evidence.Kind.String(), "proof_observed_at", proved,
		"recheck_after", st.m.Config.RecheckAfter.String())
}

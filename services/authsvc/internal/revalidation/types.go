package revalidation

import (
	"fmt"
	"time"
)

// Status is the state of the machine.
type Status int

// The states. The zero value is invalid.
const (
	// StatusUnknown: no evidence either way yet (the initial check has not
	// produced a verdict; its standing probe may be open).
	StatusUnknown Status = iota + 1
	// StatusAuthorized: the newest evidence says Serbero is a solver.
	StatusAuthorized
	// StatusUnauthorized: the newest evidence says it is not; the bounded
	// revalidation cycle is running.
	StatusUnauthorized
	// StatusTerminated: the cycle spent its budget; only an operator reset
	// starts another.
	StatusTerminated
)

var statusNames = map[Status]string{
	StatusUnknown:      "unknown",
	StatusAuthorized:   "authorized",
	StatusUnauthorized: "unauthorized",
	StatusTerminated:   "terminated",
}

// Statuses lists every valid status, for metrics.
var Statuses = []Status{StatusUnknown, StatusAuthorized, StatusUnauthorized, StatusTerminated}

// String returns the stored name (authsvc_state.state).
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("status(%d)", int(s))
}

// ParseStatus parses a stored name.
func ParseStatus(name string) (Status, error) {
	for s, n := range statusNames {
		if n == name {
			return s, nil
		}
	}
	return 0, fmt.Errorf("unknown authorization state %q", name)
}

// EvidenceKind says what an observation was. The values mirror the proto's
// EvidenceKind numbers.
type EvidenceKind int

// The evidence kinds.
const (
	// EvidenceNone: nothing observed.
	EvidenceNone EvidenceKind = 1
	// EvidenceTookDispute: the node answered admin-took-dispute.
	EvidenceTookDispute EvidenceKind = 2
	// EvidenceCantDoInvalidPubkey: cant-do invalid_pubkey for an initiated
	// dispute (or one whose status the reporter did not know).
	EvidenceCantDoInvalidPubkey EvidenceKind = 3
	// EvidenceCantDoNotAuthorized: cant-do not_authorized.
	EvidenceCantDoNotAuthorized EvidenceKind = 4
	// EvidenceNoReply: the node did not answer a take.
	EvidenceNoReply EvidenceKind = 5
	// EvidenceNodeUnreachable: no usable kind 38385 info event.
	EvidenceNodeUnreachable EvidenceKind = 6
	// EvidenceLossReported: a caller reported loss of authorization.
	EvidenceLossReported EvidenceKind = 7
	// EvidenceCantDoOther: a cant-do that proves nothing either way.
	EvidenceCantDoOther EvidenceKind = 8
	// EvidenceProbeUnclaimed: a probe expired unclaimed.
	EvidenceProbeUnclaimed EvidenceKind = 9
	// EvidenceProbeUnanswered: a claimed probe expired without an outcome.
	EvidenceProbeUnanswered EvidenceKind = 10
	// EvidenceNodeReachable: the node is reachable and speaks a supported
	// protocol, but nothing is known about registration yet.
	EvidenceNodeReachable EvidenceKind = 11
)

var evidenceNames = map[EvidenceKind]string{
	EvidenceNone:                "none",
	EvidenceTookDispute:         "took_dispute",
	EvidenceCantDoInvalidPubkey: "cant_do_invalid_pubkey",
	EvidenceCantDoNotAuthorized: "cant_do_not_authorized",
	EvidenceNoReply:             "no_reply",
	EvidenceNodeUnreachable:     "node_unreachable",
	EvidenceLossReported:        "loss_reported",
	EvidenceCantDoOther:         "cant_do_other",
	EvidenceProbeUnclaimed:      "probe_unclaimed",
	EvidenceProbeUnanswered:     "probe_unanswered",
	EvidenceNodeReachable:       "node_reachable",
}

// String returns the stored name.
func (k EvidenceKind) String() string {
	if n, ok := evidenceNames[k]; ok {
		return n
	}
	return fmt.Sprintf("evidence(%d)", int(k))
}

// ParseEvidenceKind parses a stored name.
func ParseEvidenceKind(name string) (EvidenceKind, error) {
	for k, n := range evidenceNames {
		if n == name {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown evidence kind %q", name)
}

// Verdict is what a piece of evidence says about registration.
type Verdict int

// The verdicts.
const (
	// Inconclusive evidence neither proves nor disproves registration.
	Inconclusive Verdict = iota
	// For proves registration.
	For
	// Against is evidence that Serbero is not (or no longer) registered.
	Against
)

// Verdict classifies the evidence kind.
func (k EvidenceKind) Verdict() Verdict {
	switch k {
	case EvidenceTookDispute:
		return For
	case EvidenceCantDoInvalidPubkey, EvidenceCantDoNotAuthorized, EvidenceNoReply, EvidenceLossReported:
		return Against
	default:
		return Inconclusive
	}
}

// Evidence is one observation and what it was about.
type Evidence struct {
	// Kind of observation.
	Kind EvidenceKind
	// Summary is human readable; it never holds keys or message text.
	Summary string
	// ObservedAt is when it was observed (zero for EvidenceNone).
	ObservedAt time.Time
	// DisputeID is the dispute it came from, if any.
	DisputeID string
}

// IsZero reports whether nothing was observed.
func (e Evidence) IsZero() bool { return e.Kind == 0 || e.Kind == EvidenceNone }

// Probe is a grant to mediationsvc to run one real take and report it.
type Probe struct {
	// ID identifies the probe; empty means no probe is open.
	ID string
	// GrantedAt is when it was opened.
	GrantedAt time.Time
	// Deadline is when it expires; zero for the standing probe of
	// StatusUnknown while it is unclaimed.
	Deadline time.Time
	// DisputeID is the dispute it was claimed for; empty while unclaimed.
	DisputeID string
	// ClaimerID is the prober that claimed it; empty while unclaimed.
	ClaimerID string
	// ClaimedAt is when it was claimed.
	ClaimedAt time.Time
}

// Open reports whether a probe is open.
func (p Probe) Open() bool { return p.ID != "" }

// State is everything the machine remembers. It is stored in one row
// (authsvc_state) and cached in memory by every replica.
type State struct {
	// Status is the answer.
	Status Status
	// Since is when Status was entered.
	Since time.Time
	// Attempt is the number of the newest attempt of the current cycle
	// (the one in flight while a probe is open); 0 when none ran.
	Attempt int
	// CumulativeWait sums the waits before the cycle's attempts.
	CumulativeWait time.Duration
	// NextAttemptAt is when the next attempt is due; zero when none is
	// scheduled (Authorized, Terminated, or an attempt in flight).
	NextAttemptAt time.Time
	// LastAttemptAt is when the newest attempt finished (for a reset
	// cycle: when the previous cycle's last attempt did; for a re-check on
	// start: when it began). Evidence observed after it is fresh.
	LastAttemptAt time.Time
	// LastError is the error of the newest failed attempt of the cycle.
	LastError string
	// Evidence is what the answer is based on.
	Evidence Evidence
	// Observation is the newest take outcome reported, whether or not it
	// changed the answer; the next attempt consumes it when it is fresh.
	// It is not part of the public answer.
	Observation Evidence
	// Probe is the open probe, if any.
	Probe Probe
	// Version increases with every change of the public answer.
	Version int64
}

// Initial is the state of a fresh installation: unknown, with the initial
// check due at once.
func Initial(now time.Time) State {
	return State{
		Status:        StatusUnknown,
		Since:         now,
		NextAttemptAt: now,
		Evidence:      Evidence{Kind: EvidenceNone},
		Observation:   Evidence{Kind: EvidenceNone},
		Version:       1,
	}
}

// AttemptDue reports whether an attempt should start now: the shell then
// checks the node and feeds NodeChecked.
func (s State) AttemptDue(now time.Time) bool {
	return (s.Status == StatusUnknown || s.Status == StatusUnauthorized) &&
		!s.Probe.Open() && !s.NextAttemptAt.IsZero() && !now.Before(s.NextAttemptAt)
}

// NextWake is the earliest time at which a Tick can change something: the
// next attempt or the probe deadline. Zero means nothing is scheduled.
func (s State) NextWake() time.Time {
	switch {
	case s.Status != StatusUnknown && s.Status != StatusUnauthorized:
		return time.Time{}
	case s.Probe.Open():
		return s.Probe.Deadline
	default:
		return s.NextAttemptAt
	}
}

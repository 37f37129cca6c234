package audit

// Kind is the kind column of an audit row. The values are the reference
// daemon's, byte for byte.
type Kind string

// Kinds written by mediationsvc (the mediation engine; see
// docs/architecture.md#the-audit-trail for the order of a session's rows).
const (
	KindStartAttemptStarted        Kind = "start_attempt_started"
	KindStartAttemptStopped        Kind = "start_attempt_stopped"
	KindReasoningVerdict           Kind = "reasoning_verdict"
	KindTakeDisputeIssued          Kind = "take_dispute_issued"
	KindSessionOpened              Kind = "session_opened"
	KindClassificationProduced     Kind = "classification_produced"
	KindOutboundSent               Kind = "outbound_sent"
	KindSummaryGenerated           Kind = "summary_generated"
	KindEscalationRecommended      Kind = "escalation_recommended"
	KindHandoffPrepared            Kind = "handoff_prepared"
	KindReasoningCallFailed        Kind = "reasoning_call_failed"
	KindSupersededByHuman          Kind = "superseded_by_human"
	KindSessionClosed              Kind = "session_closed"
	KindResolvedExternallyReported Kind = "resolved_externally_reported"
)

// Kinds written by authsvc's revalidation loop (daemon-scoped: no session,
// no dispute).
const (
	KindAuthRetryAttempt    Kind = "auth_retry_attempt"
	KindAuthRetryRecovered  Kind = "auth_retry_recovered"
	KindAuthRetryTerminated Kind = "auth_retry_terminated"
)

// Kinds written by escalationsvc (phase 4), one family per handoff
// (payload handoff_event_id).
const (
	KindEscalationDispatched          Kind = "escalation_dispatched"
	KindEscalationSuperseded          Kind = "escalation_superseded"
	KindEscalationDispatchUnroutable  Kind = "escalation_dispatch_unroutable"
	KindEscalationDispatchParseFailed Kind = "escalation_dispatch_parse_failed"
)

// Kinds the reference defines but never writes. They have no payload type,
// so Append cannot write them; they are listed so a reader recognises them
// in imported data.
const (
	KindInboundIngested   Kind = "inbound_ingested"
	KindStateTransition   Kind = "state_transition"
	KindAuthorizationLost Kind = "authorization_lost"
)

// Kinds returns every kind a payload type of this package writes, in the
// order of the constants above.
func Kinds() []Kind {
	return []Kind{
		KindStartAttemptStarted, KindStartAttemptStopped, KindReasoningVerdict, KindTakeDisputeIssued,
		KindSessionOpened, KindClassificationProduced, KindOutboundSent, KindSummaryGenerated,
		KindEscalationRecommended, KindHandoffPrepared, KindReasoningCallFailed, KindSupersededByHuman,
		KindSessionClosed, KindResolvedExternallyReported,
		KindAuthRetryAttempt, KindAuthRetryRecovered, KindAuthRetryTerminated,
		KindEscalationDispatched, KindEscalationSuperseded, KindEscalationDispatchUnroutable,
		KindEscalationDispatchParseFailed,
	}
}

// Scope says which rows of the trail an event belongs to.
type Scope int

// The scopes.
const (
	// ScopeSession: session_id is set; the row belongs to that session's
	// dispute.
	ScopeSession Scope = iota + 1
	// ScopeDispute: session_id is NULL and the payload's dispute_id names
	// the dispute (no session existed when it was written).
	ScopeDispute
	// ScopeEither: session-scoped when a session exists, else
	// dispute-scoped (payload dispute_id required then).
	ScopeEither
	// ScopeDaemon: session_id is NULL and the row is about Serbero itself
	// (the authorization loop), not about a dispute.
	ScopeDaemon
	// ScopeUnchecked: the payload is another contract's document, written
	// verbatim (handoff_prepared: pkg/handoff validates it).
	ScopeUnchecked
)

// String names the scope.
func (s Scope) String() string {
	switch s {
	case ScopeSession:
		return "session"
	case ScopeDispute:
		return "dispute"
	case ScopeEither:
		return "session or dispute"
	case ScopeDaemon:
		return "daemon"
	case ScopeUnchecked:
		return "unchecked"
	default:
		return "unknown"
	}
}

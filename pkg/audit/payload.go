package audit

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Payload is the payload_json of one audit row. Only the types of this
// package implement it, one per kind (or per variant of a kind whose
// variants have different keys), so a key cannot be misspelt at a call
// site: the JSON keys are the struct tags below, checked by a golden test
// against the reference's catalogue.
type Payload interface {
	// Kind is the row's kind.
	Kind() Kind
	// Scope is where the row belongs (see Scope).
	Scope() Scope
	isPayload()
}

// validator is implemented by payloads with rules beyond their types.
type validator interface{ validate() error }

// Values of payload fields (the reference's strings).
const (
	// StartTriggerDetected and StartTriggerTickRetry are the triggers of
	// start_attempt_started: the dispute-detected event, or the engine's
	// retry tick.
	StartTriggerDetected  = "detected"
	StartTriggerTickRetry = "tick_retry"

	// The stop_reason values of start_attempt_stopped.
	StopReasonIneligible         = "ineligible"
	StopReasonAuthPending        = "auth_pending"
	StopReasonAuthTerminated     = "auth_terminated"
	StopReasonReasoningUnhealthy = "reasoning_unhealthy"
	// StopReasonReasoningError: the opening classification failed; the
	// dispute stays eligible and is retried after a backoff (the
	// reference escalated it for good).
	StopReasonReasoningError = "reasoning_provider_error"
	// StopReasonTakeFailed: admin-take-dispute was refused, unanswered or
	// could not be sent; retried after a backoff.
	StopReasonTakeFailed = "take_failed"

	// ReasonPolicyEscalate is the reason of a start stopped because the
	// reasoning verdict said escalate (StartAttemptPolicyEscalate).
	ReasonPolicyEscalate = "policy_escalate"

	// The decision values of reasoning_verdict.
	DecisionAskClarification = "ask_clarification"
	DecisionSummarize        = "summarize"
	DecisionEscalate         = "escalate"

	// The outcome values of take_dispute_issued.
	TakeOutcomeSuccess = "success"
	TakeOutcomeFailure = "failure"

	// TriggerPolicyBundleMissing is the trigger of
	// EscalationRecommendedBundleMissing.
	TriggerPolicyBundleMissing = "policy_bundle_missing"

	// ReasonDisputeResolvedExternally is the reason of superseded_by_human
	// and session_closed when Mostro resolved the dispute.
	ReasonDisputeResolvedExternally = "dispute_resolved_externally"
	// ReasonDisputeTakenOver is the reason of superseded_by_human and
	// session_closed when another solver took the dispute over (a later
	// in-progress revision Serbero's own take did not cause).
	ReasonDisputeTakenOver = "dispute_taken_over"

	// The status values of escalation_dispatched.
	DispatchStatusDispatched = "dispatched"
	DispatchStatusSendFailed = "send_failed"

	// ReasonDisputeAlreadyResolved is the reason of escalation_superseded.
	ReasonDisputeAlreadyResolved = "dispute_already_resolved"

	// The reason values of escalation_dispatch_parse_failed.
	ParseFailedDeserialize = "deserialize_failed"
	ParseFailedOrphan      = "orphan_dispute_reference"
)

// ---- mediationsvc: starting a session ----

// StartAttemptStarted is start_attempt_started: an attempt to open a
// session for a dispute began. Dispute-scoped; bundle columns NULL.
type StartAttemptStarted struct {
	DisputeID string `json:"dispute_id"`
	// Trigger is StartTriggerDetected or StartTriggerTickRetry.
	Trigger string `json:"trigger"`
}

// StartAttemptStopped is start_attempt_stopped with a stop_reason (one of
// the StopReason constants): the attempt ended before the reasoning
// verdict. Dispute-scoped; bundle columns NULL.
type StartAttemptStopped struct {
	DisputeID  string `json:"dispute_id"`
	StopReason string `json:"stop_reason"`
}

// StartAttemptPolicyEscalate is start_attempt_stopped written when the
// reasoning verdict said escalate before any take: the payload key is
// "reason" (always ReasonPolicyEscalate), not "stop_reason", as the
// reference writes it. Dispute-scoped; bundle columns set.
type StartAttemptPolicyEscalate struct {
	DisputeID string
	Trigger   string
}

// MarshalJSON writes {dispute_id, reason: "policy_escalate", trigger}.
func (p StartAttemptPolicyEscalate) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		DisputeID string `json:"dispute_id"`
		Reason    string `json:"reason"`
		Trigger   string `json:"trigger"`
	}{p.DisputeID, ReasonPolicyEscalate, p.Trigger})
}

// ReasoningVerdict is reasoning_verdict: the decision the policy layer
// took on the opening classification. Dispute-scoped; bundle columns set,
// rationale_id NULL. Its keys depend on Decision: ask_clarification
// writes {dispute_id, decision}; summarize adds classification and
// confidence; escalate adds trigger. Build it with VerdictAskClarification,
// VerdictSummarize or VerdictEscalate.
type ReasoningVerdict struct {
	DisputeID      string   `json:"dispute_id"`
	Decision       string   `json:"decision"`
	Classification string   `json:"classification,omitempty"`
	Confidence     *float64 `json:"confidence,omitempty"`
	Trigger        string   `json:"trigger,omitempty"`
}

// VerdictAskClarification is the verdict that opens a session with
// clarifying questions.
func VerdictAskClarification(disputeID string) ReasoningVerdict {
	return ReasoningVerdict{DisputeID: disputeID, Decision: DecisionAskClarification}
}

// VerdictSummarize is the verdict that goes straight to a summary.
func VerdictSummarize(disputeID, classification string, confidence float64) ReasoningVerdict {
	return ReasoningVerdict{DisputeID: disputeID, Decision: DecisionSummarize, Classification: classification, Confidence: &confidence}
}

// VerdictEscalate is the verdict that escalates before any take.
func VerdictEscalate(disputeID, trigger string) ReasoningVerdict {
	return ReasoningVerdict{DisputeID: disputeID, Decision: DecisionEscalate, Trigger: trigger}
}

// MarshalJSON writes exactly the keys of the verdict's decision.
func (p ReasoningVerdict) MarshalJSON() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	switch p.Decision {
	case DecisionSummarize:
		return json.Marshal(struct {
			DisputeID      string  `json:"dispute_id"`
			Decision       string  `json:"decision"`
			Classification string  `json:"classification"`
			Confidence     float64 `json:"confidence"`
		}{p.DisputeID, p.Decision, p.Classification, *p.Confidence})
	case DecisionEscalate:
		return json.Marshal(struct {
			DisputeID string `json:"dispute_id"`
			Decision  string `json:"decision"`
			Trigger   string `json:"trigger"`
		}{p.DisputeID, p.Decision, p.Trigger})
	default:
		return json.Marshal(struct {
			DisputeID string `json:"dispute_id"`
			Decision  string `json:"decision"`
		}{p.DisputeID, p.Decision})
	}
}

func (p ReasoningVerdict) validate() error {
	switch p.Decision {
	case DecisionAskClarification:
		return nil
	case DecisionSummarize:
		if p.Classification == "" || p.Confidence == nil {
			return errors.New("a summarize verdict needs classification and confidence")
		}
		return nil
	case DecisionEscalate:
		if p.Trigger == "" {
			return errors.New("an escalate verdict needs a trigger")
		}
		return nil
	default:
		return fmt.Errorf("unknown verdict decision %q", p.Decision)
	}
}

// TakeDisputeIssued is take_dispute_issued: the outcome of Serbero's
// take-dispute exchange with Mostro. Dispute-scoped; bundle columns set.
// success writes {dispute_id, outcome}; failure adds reason. Build it
// with TakeSucceeded or TakeFailed.
type TakeDisputeIssued struct {
	DisputeID string `json:"dispute_id"`
	Outcome   string `json:"outcome"`
	Reason    string `json:"reason,omitempty"`
}

// TakeSucceeded is a successful take.
func TakeSucceeded(disputeID string) TakeDisputeIssued {
	return TakeDisputeIssued{DisputeID: disputeID, Outcome: TakeOutcomeSuccess}
}

// TakeFailed is a failed take; reason is the error, for operators.
func TakeFailed(disputeID, reason string) TakeDisputeIssued {
	return TakeDisputeIssued{DisputeID: disputeID, Outcome: TakeOutcomeFailure, Reason: reason}
}

// MarshalJSON writes exactly the keys of the outcome (reason always
// present on a failure, even empty).
func (p TakeDisputeIssued) MarshalJSON() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	if p.Outcome == TakeOutcomeFailure {
		return json.Marshal(struct {
			DisputeID string `json:"dispute_id"`
			Outcome   string `json:"outcome"`
			Reason    string `json:"reason"`
		}{p.DisputeID, p.Outcome, p.Reason})
	}
	return json.Marshal(struct {
		DisputeID string `json:"dispute_id"`
		Outcome   string `json:"outcome"`
	}{p.DisputeID, p.Outcome})
}

func (p TakeDisputeIssued) validate() error {
	if p.Outcome != TakeOutcomeSuccess && p.Outcome != TakeOutcomeFailure {
		return fmt.Errorf("unknown take outcome %q", p.Outcome)
	}
	return nil
}

// ---- mediationsvc: a session ----

// SessionOpened is session_opened: the session row was created (payload
// {}). Session-scoped; bundle columns set.
type SessionOpened struct{}

// ClassificationProduced is classification_produced. Session-scoped; the
// rationale_id column and the bundle columns are set.
type ClassificationProduced struct {
	Classification string  `json:"classification"`
	Confidence     float64 `json:"confidence"`
	RationaleID    string  `json:"rationale_id"`
}

// OutboundSent is outbound_sent: a party message was published (written
// only after the publish succeeded). Session-scoped; bundle columns set.
type OutboundSent struct {
	InnerEventID string `json:"inner_event_id"`
	SharedPubkey string `json:"shared_pubkey"`
}

// SummaryGenerated is summary_generated. Session-scoped; the rationale_id
// column and the bundle columns are set. The summary text is never here.
type SummaryGenerated struct {
	Classification string  `json:"classification"`
	Confidence     float64 `json:"confidence"`
	RationaleID    string  `json:"rationale_id"`
}

// EscalationRecommended is escalation_recommended as the handoff
// chokepoint writes it, beside the handoff_prepared row. Session- or
// dispute-scoped; bundle columns set. The arrays are never null.
type EscalationRecommended struct {
	DisputeID     string
	Trigger       string
	EvidenceRefs  []string
	RationaleRefs []string
}

// MarshalJSON writes {dispute_id, evidence_refs, rationale_refs, trigger}
// with empty arrays for nil.
func (p EscalationRecommended) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		DisputeID     string   `json:"dispute_id"`
		EvidenceRefs  []string `json:"evidence_refs"`
		RationaleRefs []string `json:"rationale_refs"`
		Trigger       string   `json:"trigger"`
	}{p.DisputeID, nonNil(p.EvidenceRefs), nonNil(p.RationaleRefs), p.Trigger})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *EscalationRecommended) UnmarshalJSON(b []byte) error {
	var v struct {
		DisputeID     string   `json:"dispute_id"`
		EvidenceRefs  []string `json:"evidence_refs"`
		RationaleRefs []string `json:"rationale_refs"`
		Trigger       string   `json:"trigger"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = EscalationRecommended{DisputeID: v.DisputeID, Trigger: v.Trigger, EvidenceRefs: v.EvidenceRefs, RationaleRefs: v.RationaleRefs}
	return nil
}

// EscalationRecommendedSummaryPath is escalation_recommended written when
// the summary path fails (no recipient, every send failed, a refused
// summary, a reasoning error). Session-scoped; bundle columns set.
type EscalationRecommendedSummaryPath struct {
	Reason    string `json:"reason"`
	SessionID string `json:"session_id"`
	Trigger   string `json:"trigger"`
}

// EscalationRecommendedBundleMissing is escalation_recommended written at
// start-up for a live session whose pinned prompt bundle is nowhere to be
// found (trigger always TriggerPolicyBundleMissing). Session-scoped;
// prompt_bundle_id NULL, policy_hash the pinned hash.
type EscalationRecommendedBundleMissing struct {
	LoadedHash string
	PinnedHash string
	SessionID  string
}

// MarshalJSON writes {loaded_hash, pinned_hash, session_id, trigger}.
func (p EscalationRecommendedBundleMissing) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		LoadedHash string `json:"loaded_hash"`
		PinnedHash string `json:"pinned_hash"`
		SessionID  string `json:"session_id"`
		Trigger    string `json:"trigger"`
	}{p.LoadedHash, p.PinnedHash, p.SessionID, TriggerPolicyBundleMissing})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (p *EscalationRecommendedBundleMissing) UnmarshalJSON(b []byte) error {
	var v struct {
		LoadedHash string `json:"loaded_hash"`
		PinnedHash string `json:"pinned_hash"`
		SessionID  string `json:"session_id"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = EscalationRecommendedBundleMissing(v)
	return nil
}

// HandoffPrepared is handoff_prepared: the escalation handoff package
// exactly as pkg/handoff encodes it (only pkg/handoff writes this kind,
// with its queue row). Package must be a JSON object.
type HandoffPrepared struct {
	Package json.RawMessage
}

// MarshalJSON writes the package verbatim.
func (p HandoffPrepared) MarshalJSON() ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	return p.Package, nil
}

// UnmarshalJSON keeps the package verbatim.
func (p *HandoffPrepared) UnmarshalJSON(b []byte) error {
	p.Package = append(json.RawMessage(nil), b...)
	return nil
}

func (p HandoffPrepared) validate() error {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(p.Package, &obj); err != nil || obj == nil {
		return errors.New("handoff_prepared payload must be a JSON object")
	}
	return nil
}

// ReasoningCallFailed is reasoning_call_failed: a call to the reasoning
// provider failed (error_category, never the error text). Dispute-scoped
// on the open path (with dispute_id) or session-scoped (without); bundle
// columns set.
type ReasoningCallFailed struct {
	DisputeID     string `json:"dispute_id,omitempty"`
	AttemptCount  int    `json:"attempt_count"`
	ErrorCategory string `json:"error_category"`
	Model         string `json:"model"`
	Provider      string `json:"provider"`
}

// SupersededByHuman is superseded_by_human: a live session ended because a
// human (or Mostro's resolution) took over. Session-scoped; the session's
// pinned bundle columns.
type SupersededByHuman struct {
	DisputeID string `json:"dispute_id"`
	// EventID is the id of the dispute event that resolved it.
	EventID string `json:"event_id"`
	// Reason is ReasonDisputeResolvedExternally.
	Reason string `json:"reason"`
	// ResolutionStatus is the event's s value.
	ResolutionStatus string `json:"resolution_status"`
}

// SessionClosed is session_closed. Session-scoped; the session's pinned
// bundle columns.
type SessionClosed struct {
	DisputeID string `json:"dispute_id"`
	// Reason is ReasonDisputeResolvedExternally.
	Reason string `json:"reason"`
}

// ResolvedExternallyReported is resolved_externally_reported: the final
// resolution report was sent. Session-scoped when the dispute had a
// session (the latest), else dispute-scoped; bundle and rationale columns
// NULL. session_id, classification and confidence are null when unknown
// (the keys are always present). Never rationale text.
type ResolvedExternallyReported struct {
	Classification             *string  `json:"classification"`
	Confidence                 *float64 `json:"confidence"`
	DisputeID                  string   `json:"dispute_id"`
	FinalDisputeStatus         string   `json:"final_dispute_status"`
	Narrative                  string   `json:"narrative"`
	OutboundPartyMessagesCount int      `json:"outbound_party_messages_count"`
	SessionID                  *string  `json:"session_id"`
}

// ---- authsvc ----

// AuthRetryAttempt is auth_retry_attempt: one failed authorization check
// of a revalidation cycle. Daemon-scoped; every other column NULL.
type AuthRetryAttempt struct {
	Attempt int    `json:"attempt"`
	Error   string `json:"error"`
}

// AuthRetryRecovered is auth_retry_recovered: the cycle found proof of
// authorization. Daemon-scoped.
type AuthRetryRecovered struct {
	Attempt int `json:"attempt"`
}

// AuthRetryTerminated is auth_retry_terminated: the cycle gave up.
// Daemon-scoped.
type AuthRetryTerminated struct {
	Attempt        int   `json:"attempt"`
	CumulativeSecs int64 `json:"cumulative_secs"`
}

// ---- escalationsvc ----

// EscalationDispatched is escalation_dispatched: a handoff was sent to its
// recipients (or every send failed); it pairs with the escalation_dispatches
// row of the same dispatch_id. Session- or dispute-scoped as the handoff;
// bundle columns copied from it.
type EscalationDispatched struct {
	DispatchID     string `json:"dispatch_id"`
	DisputeID      string `json:"dispute_id"`
	HandoffEventID int64  `json:"handoff_event_id"`
	// TargetSolver is the recipients' pubkeys, comma-joined in send order.
	TargetSolver string `json:"target_solver"`
	// Status is DispatchStatusDispatched or DispatchStatusSendFailed.
	Status            string `json:"status"`
	FallbackBroadcast bool   `json:"fallback_broadcast"`
}

// EscalationSuperseded is escalation_superseded: the handoff's dispute was
// resolved before it was dispatched (Reason ReasonDisputeAlreadyResolved).
type EscalationSuperseded struct {
	DisputeID      string `json:"dispute_id"`
	HandoffEventID int64  `json:"handoff_event_id"`
	Reason         string `json:"reason"`
}

// EscalationDispatchUnroutable is escalation_dispatch_unroutable: no
// solver may receive the handoff under the current configuration.
type EscalationDispatchUnroutable struct {
	DisputeID             string `json:"dispute_id"`
	HandoffEventID        int64  `json:"handoff_event_id"`
	ConfiguredSolverCount int    `json:"configured_solver_count"`
	FallbackToAllSolvers  bool   `json:"fallback_to_all_solvers"`
}

// EscalationDispatchParseFailed is escalation_dispatch_parse_failed: the
// handoff cannot be dispatched (Reason ParseFailedDeserialize or
// ParseFailedOrphan; DisputeID "unknown" when the payload names none).
type EscalationDispatchParseFailed struct {
	DisputeID      string `json:"dispute_id"`
	HandoffEventID int64  `json:"handoff_event_id"`
	Reason         string `json:"reason"`
	Detail         string `json:"detail"`
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Kind and Scope of every payload type.

// Kind implements Payload.
func (StartAttemptStarted) Kind() Kind { return KindStartAttemptStarted }

// Kind implements Payload.
func (StartAttemptStopped) Kind() Kind { return KindStartAttemptStopped }

// Kind implements Payload.
func (StartAttemptPolicyEscalate) Kind() Kind { return KindStartAttemptStopped }

// Kind implements Payload.
func (ReasoningVerdict) Kind() Kind { return KindReasoningVerdict }

// Kind implements Payload.
func (TakeDisputeIssued) Kind() Kind { return KindTakeDisputeIssued }

// Kind implements Payload.
func (SessionOpened) Kind() Kind { return KindSessionOpened }

// Kind implements Payload.
func (ClassificationProduced) Kind() Kind { return KindClassificationProduced }

// Kind implements Payload.
func (OutboundSent) Kind() Kind { return KindOutboundSent }

// Kind implements Payload.
func (SummaryGenerated) Kind() Kind { return KindSummaryGenerated }

// Kind implements Payload.
func (EscalationRecommended) Kind() Kind { return KindEscalationRecommended }

// Kind implements Payload.
func (EscalationRecommendedSummaryPath) Kind() Kind { return KindEscalationRecommended }

// Kind implements Payload.
func (EscalationRecommendedBundleMissing) Kind() Kind { return KindEscalationRecommended }

// Kind implements Payload.
func (HandoffPrepared) Kind() Kind { return KindHandoffPrepared }

// Kind implements Payload.
func (ReasoningCallFailed) Kind() Kind { return KindReasoningCallFailed }

// Kind implements Payload.
func (SupersededByHuman) Kind() Kind { return KindSupersededByHuman }

// Kind implements Payload.
func (SessionClosed) Kind() Kind { return KindSessionClosed }

// Kind implements Payload.
func (ResolvedExternallyReported) Kind() Kind { return KindResolvedExternallyReported }

// Kind implements Payload.
func (AuthRetryAttempt) Kind() Kind { return KindAuthRetryAttempt }

// Kind implements Payload.
func (AuthRetryRecovered) Kind() Kind { return KindAuthRetryRecovered }

// Kind implements Payload.
func (AuthRetryTerminated) Kind() Kind { return KindAuthRetryTerminated }

// Kind implements Payload.
func (EscalationDispatched) Kind() Kind { return KindEscalationDispatched }

// Kind implements Payload.
func (EscalationSuperseded) Kind() Kind { return KindEscalationSuperseded }

// Kind implements Payload.
func (EscalationDispatchUnroutable) Kind() Kind { return KindEscalationDispatchUnroutable }

// Kind implements Payload.
func (EscalationDispatchParseFailed) Kind() Kind { return KindEscalationDispatchParseFailed }

// Scope implements Payload.
func (StartAttemptStarted) Scope() Scope { return ScopeDispute }

// Scope implements Payload.
func (StartAttemptStopped) Scope() Scope { return ScopeDispute }

// Scope implements Payload.
func (StartAttemptPolicyEscalate) Scope() Scope { return ScopeDispute }

// Scope implements Payload.
func (ReasoningVerdict) Scope() Scope { return ScopeDispute }

// Scope implements Payload.
func (TakeDisputeIssued) Scope() Scope { return ScopeDispute }

// Scope implements Payload.
func (SessionOpened) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (ClassificationProduced) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (OutboundSent) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (SummaryGenerated) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (EscalationRecommended) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (EscalationRecommendedSummaryPath) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (EscalationRecommendedBundleMissing) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (HandoffPrepared) Scope() Scope { return ScopeUnchecked }

// Scope implements Payload.
func (ReasoningCallFailed) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (SupersededByHuman) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (SessionClosed) Scope() Scope { return ScopeSession }

// Scope implements Payload.
func (ResolvedExternallyReported) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (AuthRetryAttempt) Scope() Scope { return ScopeDaemon }

// Scope implements Payload.
func (AuthRetryRecovered) Scope() Scope { return ScopeDaemon }

// Scope implements Payload.
func (AuthRetryTerminated) Scope() Scope { return ScopeDaemon }

// Scope implements Payload.
func (EscalationDispatched) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (EscalationSuperseded) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (EscalationDispatchUnroutable) Scope() Scope { return ScopeEither }

// Scope implements Payload.
func (EscalationDispatchParseFailed) Scope() Scope { return ScopeEither }

func (StartAttemptStarted) isPayload()                {}
func (StartAttemptStopped) isPayload()                {}
func (StartAttemptPolicyEscalate) isPayload()         {}
func (ReasoningVerdict) isPayload()                   {}
func (TakeDisputeIssued) isPayload()                  {}
func (SessionOpened) isPayload()                      {}
func (ClassificationProduced) isPayload()             {}
func (OutboundSent) isPayload()                       {}
func (SummaryGenerated) isPayload()                   {}
func (EscalationRecommended) isPayload()              {}
func (EscalationRecommendedSummaryPath) isPayload()   {}
func (EscalationRecommendedBundleMissing) isPayload() {}
func (HandoffPrepared) isPayload()                    {}
func (ReasoningCallFailed) isPayload()                {}
func (SupersededByHuman) isPayload()                  {}
func (SessionClosed) isPayload()                      {}
func (ResolvedExternallyReported) isPayload()         {}
func (AuthRetryAttempt) isPayload()                   {}
func (AuthRetryRecovered) isPayload()                 {}
func (AuthRetryTerminated) isPayload()                {}
func (EscalationDispatched) isPayload()               {}
func (EscalationSuperseded) isPayload()               {}
func (EscalationDispatchUnroutable) isPayload()       {}
func (EscalationDispatchParseFailed) isPayload()      {}

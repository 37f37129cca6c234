package reasoning

import (
	"context"

	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
)

// Provider is a reasoning backend. Implementations are safe for concurrent
// use and return *Error for every failure.
type Provider interface {
	// Classify asks the model to classify a dispute and suggest an action.
	Classify(ctx context.Context, req ClassificationRequest) (ClassificationResponse, error)
	// Summarize asks the model for a summary for the human solver.
	Summarize(ctx context.Context, req SummaryRequest) (SummaryResponse, error)
	// HealthCheck makes a real, minimal call ("ping").
	HealthCheck(ctx context.Context) error
}

// Operation names a provider call, for metrics and logs.
type Operation string

// The three operations.
const (
	OpClassify  Operation = "classify"
	OpSummarize Operation = "summarize"
	OpHealth    Operation = "health_check"
)

// Label is a classification label.
type Label string

// The five classification labels.
const (
	LabelCoordinationFailureResolvable Label = "coordination_failure_resolvable"
	LabelConflictingClaims             Label = "conflicting_claims"
	LabelSuspectedFraud                Label = "suspected_fraud"
	LabelUnclear                       Label = "unclear"
	LabelNotSuitableForMediation       Label = "not_suitable_for_mediation"
)

// Labels lists the labels in their documented order.
var Labels = []Label{
	LabelCoordinationFailureResolvable, LabelConflictingClaims, LabelSuspectedFraud,
	LabelUnclear, LabelNotSuitableForMediation,
}

// Flag is a classification flag.
type Flag string

// The five flags.
const (
	FlagFraudRisk                Flag = "fraud_risk"
	FlagConflictingClaims        Flag = "conflicting_claims"
	FlagLowInfo                  Flag = "low_info"
	FlagUnresponsiveParty        Flag = "unresponsive_party"
	FlagAuthorityBoundaryAttempt Flag = "authority_boundary_attempt"
)

// Flags lists the flags in their documented order.
var Flags = []Flag{FlagFraudRisk, FlagConflictingClaims, FlagLowInfo, FlagUnresponsiveParty, FlagAuthorityBoundaryAttempt}

// ActionKind is the model's suggested action.
type ActionKind string

// The three suggested actions.
const (
	ActionAskClarification ActionKind = "ask_clarification"
	ActionSummarize        ActionKind = "summarize"
	ActionEscalate         ActionKind = "escalate"
)

// Action is the suggested action with its data: the two clarification
// texts (AskClarification, trimmed, non-empty) or the free-form escalation
// reason (Escalate; informational only).
type Action struct {
	// Kind is the action.
	Kind ActionKind
	// BuyerText is the question for the buyer (AskClarification).
	BuyerText string
	// SellerText is the question for the seller (AskClarification).
	SellerText string
	// EscalateReason is suggested_action_detail (Escalate), possibly "".
	EscalateReason string
}

// Party is who said a transcript line.
type Party string

// Transcript parties.
const (
	PartyBuyer   Party = "buyer"
	PartySeller  Party = "seller"
	PartySerbero Party = "serbero"
)

// TranscriptLine is one message of a session, in ascending time order.
type TranscriptLine struct {
	// Party is buyer, seller or serbero.
	Party Party
	// InnerEventCreatedAt is the message's authoritative time (Unix s).
	InnerEventCreatedAt int64
	// Content is the message text.
	Content string
}

// Context is what the model is told about the session so far.
type Context struct {
	// RoundCount is the session's round count (0 at open).
	RoundCount int64
	// LastClassification is the previous label, if known.
	LastClassification *Label
	// LastConfidence is the previous confidence, if known.
	LastConfidence *float64
}

// ClassificationRequest is the input of Classify. The bundle's bytes are
// sent in full, so the policy_hash in the prompt is honest.
type ClassificationRequest struct {
	// SessionID is the session, or the dispute id on the opening call.
	SessionID string
	// DisputeID is the dispute.
	DisputeID string
	// InitiatorRole is buyer or seller.
	InitiatorRole string
	// Bundle is the session's pinned prompt bundle.
	Bundle bundle.Bundle
	// Transcript is the session's messages, ascending.
	Transcript []TranscriptLine
	// Context is the session context.
	Context Context
}

// ClassificationResponse is the parsed answer of Classify.
type ClassificationResponse struct {
	// Classification is one of Labels.
	Classification Label
	// Confidence is in [0, 1].
	Confidence float64
	// Action is the suggested action.
	Action Action
	// Rationale is the model's reasoning; it never reaches a log line.
	Rationale Rationale
	// Flags is a subset of Flags.
	Flags []Flag
}

// HasFlag reports whether f is among the flags.
func (r ClassificationResponse) HasFlag(f Flag) bool {
	for _, g := range r.Flags {
		if g == f {
			return true
		}
	}
	return false
}

// SummaryRequest is the input of Summarize.
type SummaryRequest struct {
	// SessionID is the session.
	SessionID string
	// DisputeID is the dispute.
	DisputeID string
	// Bundle is the session's pinned prompt bundle.
	Bundle bundle.Bundle
	// Transcript is the session's messages, ascending.
	Transcript []TranscriptLine
	// Classification is the label that led to the summary.
	Classification Label
	// Confidence is its confidence.
	Confidence float64
}

// SummaryResponse is the parsed answer of Summarize.
type SummaryResponse struct {
	// SummaryText is the summary for the solver (non-empty).
	SummaryText string
	// SuggestedNextStep is the one-line next step (may be empty: the
	// policy rejects that).
	SuggestedNextStep string
	// Rationale is the model's reasoning; it never reaches a log line.
	Rationale Rationale
}

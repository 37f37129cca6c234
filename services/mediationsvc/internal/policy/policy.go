// Package policy decides what mediation may do with the model's answer. It
// is pure: Decide turns a classification into ask / summarize / escalate
// with a trigger, and the outbound checks reject any text meant for a
// party or a solver that oversteps Serbero's authority or still holds a
// template placeholder. See docs/mediation.md#policy.
package policy

import (
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

// Trigger is an escalation trigger.
type Trigger string

// The twelve escalation triggers.
const (
	TriggerConflictingClaims        Trigger = "conflicting_claims"
	TriggerFraudIndicator           Trigger = "fraud_indicator"
	TriggerLowConfidence            Trigger = "low_confidence"
	TriggerPartyUnresponsive        Trigger = "party_unresponsive"
	TriggerRoundLimit               Trigger = "round_limit"
	TriggerReasoningUnavailable     Trigger = "reasoning_unavailable"
	TriggerAuthorizationLost        Trigger = "authorization_lost"
	TriggerAuthorityBoundaryAttempt Trigger = "authority_boundary_attempt"
	TriggerMediationTimeout         Trigger = "mediation_timeout"
	TriggerPolicyBundleMissing      Trigger = "policy_bundle_missing"
	TriggerInvalidModelOutput       Trigger = "invalid_model_output"
	TriggerNotificationFailed       Trigger = "notification_failed"
)

// Triggers lists the triggers in their documented order.
var Triggers = []Trigger{
	TriggerConflictingClaims, TriggerFraudIndicator, TriggerLowConfidence, TriggerPartyUnresponsive,
	TriggerRoundLimit, TriggerReasoningUnavailable, TriggerAuthorizationLost, TriggerAuthorityBoundaryAttempt,
	TriggerMediationTimeout, TriggerPolicyBundleMissing, TriggerInvalidModelOutput, TriggerNotificationFailed,
}

// Thresholds of the decision.
const (
	// LowConfidenceThreshold: a confidence below it escalates (outside the
	// bypass window).
	LowConfidenceThreshold = 0.5
	// EarlyMidSessionBypassFollowups is the last follow-up number inside
	// the low-confidence bypass window.
	EarlyMidSessionBypassFollowups = 3
)

// Round says when a classification happens: at open (Initial) or after
// party replies (FollowupNumber ≥ 1: the count of classifications the
// session already has).
type Round struct {
	// FollowupNumber is 0 for the opening classification.
	FollowupNumber int
}

// Initial is the opening classification.
func Initial() Round { return Round{} }

// MidSession is the n-th classification after the opening one (n ≥ 1).
func MidSession(n int) Round { return Round{FollowupNumber: max(n, 1)} }

// IsInitial reports whether r is the opening classification.
func (r Round) IsInitial() bool { return r.FollowupNumber == 0 }

// InBypassWindow reports whether a low-confidence question may still be
// asked: at open and for the first three follow-ups.
func (r Round) InBypassWindow() bool {
	return r.IsInitial() || r.FollowupNumber <= EarlyMidSessionBypassFollowups
}

// Outcome is what a decision lets mediation do.
type Outcome string

// The three outcomes (the verdict decision strings).
const (
	OutcomeAskClarification Outcome = "ask_clarification"
	OutcomeSummarize        Outcome = "summarize"
	OutcomeEscalate         Outcome = "escalate"
)

// Decision is the policy's answer.
type Decision struct {
	// Outcome is ask, summarize or escalate.
	Outcome Outcome
	// Trigger is set when Outcome is escalate.
	Trigger Trigger
	// BuyerText and SellerText are the questions to send (ask).
	BuyerText, SellerText string
	// Classification and Confidence are the model's (summarize, and for
	// audit in every case).
	Classification reasoning.Label
	// Confidence is the model's confidence.
	Confidence float64
	// Rule names the rule that decided, for logs and tests.
	Rule string
	// Violations are the outbound-text findings that led to an escalation
	// (never the text itself).
	Violations []Violation
}

func escalate(c reasoning.ClassificationResponse, t Trigger, rule string, v ...Violation) Decision {
	return Decision{Outcome: OutcomeEscalate, Trigger: t, Classification: c.Classification, Confidence: c.Confidence, Rule: rule, Violations: v}
}

// Decide applies the rules in order; the first that matches decides:
//
//  1. flag fraud_risk → escalate fraud_indicator
//  2. flag conflicting_claims → escalate conflicting_claims
//  3. flag authority_boundary_attempt → escalate authority_boundary_attempt
//  4. a question that oversteps authority (see CheckOutbound) →
//     escalate authority_boundary_attempt
//  5. confidence < 0.5 → escalate low_confidence, unless the action is
//     ask_clarification inside the bypass window
//  6. action escalate → escalate reasoning_unavailable (the model's own
//     reason is discarded)
//  7. ask_clarification with a blank question → escalate
//     reasoning_unavailable; with a leftover template placeholder →
//     escalate invalid_model_output; else ask
//  8. summarize: label coordination_failure_resolvable → summarize; any
//     other label → escalate invalid_model_output
//
// The flags low_info and unresponsive_party are informational.
func Decide(c reasoning.ClassificationResponse, r Round) Decision {
	switch {
	case c.HasFlag(reasoning.FlagFraudRisk):
		return escalate(c, TriggerFraudIndicator, "fraud_flag")
	case c.HasFlag(reasoning.FlagConflictingClaims):
		return escalate(c, TriggerConflictingClaims, "conflicting_claims_flag")
	case c.HasFlag(reasoning.FlagAuthorityBoundaryAttempt):
		return escalate(c, TriggerAuthorityBoundaryAttempt, "authority_flag")
	}
	ask := c.Action.Kind == reasoning.ActionAskClarification
	if ask {
		if v := authorityViolations(c.Action.BuyerText, c.Action.SellerText); len(v) > 0 {
			return escalate(c, TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question", v...)
		}
	}
	if c.Confidence < LowConfidenceThreshold && !(ask && r.InBypassWindow()) {
		return escalate(c, TriggerLowConfidence, "low_confidence")
	}
	switch c.Action.Kind {
	case reasoning.ActionEscalate:
		return escalate(c, TriggerReasoningUnavailable, "model_escalate")
	case reasoning.ActionAskClarification:
		if blank(c.Action.BuyerText) || blank(c.Action.SellerText) {
			return escalate(c, TriggerReasoningUnavailable, "blank_question")
		}
		if v := placeholderViolations(c.Action.BuyerText, c.Action.SellerText); len(v) > 0 {
			return escalate(c, TriggerInvalidModelOutput, "placeholder_in_question", v...)
		}
		return Decision{
			Outcome: OutcomeAskClarification, BuyerText: c.Action.BuyerText, SellerText: c.Action.SellerText,
			Classification: c.Classification, Confidence: c.Confidence, Rule: "ask",
		}
	case reasoning.ActionSummarize:
		if c.Classification == reasoning.LabelCoordinationFailureResolvable {
			return Decision{Outcome: OutcomeSummarize, Classification: c.Classification, Confidence: c.Confidence, Rule: "summarize"}
		}
		return escalate(c, TriggerInvalidModelOutput, "summarize_wrong_label")
	}
	// The parser never yields another action; treat one as unusable output.
	return escalate(c, TriggerInvalidModelOutput, "unknown_action")
}

// SummaryCheck is the policy's verdict on a summary: nil when it may be
// delivered.
type SummaryCheck struct {
	// Trigger is the escalation trigger.
	Trigger Trigger
	// Reason is the escalation reason for the audit payload (fixed texts,
	// never the summary).
	Reason string
	// Violations are the findings.
	Violations []Violation
}

// The summary rejection reasons.
const (
	ReasonEmptySummary       = "empty summary or suggested next step from reasoning provider"
	ReasonAuthorityInSummary = "authority boundary attempt in summary"
	ReasonPlaceholderSummary = "unresolved template placeholder in summary"
)

// CheckSummary checks a summary before it goes to a solver: an empty
// summary or next step, or an authority phrase, escalates
// authority_boundary_attempt; a leftover template placeholder escalates
// invalid_model_output.
func CheckSummary(s reasoning.SummaryResponse) *SummaryCheck {
	if blank(s.SummaryText) || blank(s.SuggestedNextStep) {
		return &SummaryCheck{Trigger: TriggerAuthorityBoundaryAttempt, Reason: ReasonEmptySummary}
	}
	if v := summaryAuthorityViolations(s.SummaryText, s.SuggestedNextStep); len(v) > 0 {
		return &SummaryCheck{Trigger: TriggerAuthorityBoundaryAttempt, Reason: ReasonAuthorityInSummary, Violations: v}
	}
	if v := placeholderViolations(s.SummaryText, s.SuggestedNextStep); len(v) > 0 {
		return &SummaryCheck{Trigger: TriggerInvalidModelOutput, Reason: ReasonPlaceholderSummary, Violations: v}
	}
	return nil
}

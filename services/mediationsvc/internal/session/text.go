package session

import (
	"fmt"
	"strconv"
	"strings"
)

// OpeningBody is the first message to a party: "Buyer: <text>" or
// "Seller: <text>".
func OpeningBody(p Party, text string) string {
	return p.Label() + ": " + text
}

// FollowUpBody is a follow-up question to a party: "Round <N>. Buyer:
// <text>" (round is the follow-up number, 1 for the first follow-up).
func FollowUpBody(round int, p Party, text string) string {
	return "Round " + strconv.Itoa(round) + ". " + OpeningBody(p, text)
}

// SummaryDM is the cooperative summary sent to solvers:
// "<summary>\n\nSuggested next step: <next step>".
func SummaryDM(summaryText, nextStep string) string {
	return summaryText + "\n\nSuggested next step: " + nextStep
}

// SessionEscalationDM is the DM to solvers when a session escalates.
func SessionEscalationDM(sessionID, disputeID, trigger string) string {
	return "Mediation session " + sessionID + " (dispute " + disputeID + ") escalated \u2014 trigger: " +
		trigger + ". Needs human judgment."
}

// DisputeEscalationDM is the DM to every solver when the verdict at open
// escalates a dispute before any take (no session exists).
func DisputeEscalationDM(disputeID, trigger string) string {
	return "Dispute " + disputeID + " escalated before mediation take \u2014 trigger: " + trigger +
		". Serbero ran the reasoning verdict and the policy layer said this dispute is not a mediation" +
		" candidate. No session was opened. Needs human judgment."
}

// ReportPrefix is the first line of the final resolution report.
const ReportPrefix = "mediation_resolution_report/v1"

// ReportInput is what the final resolution report says, read from the
// database by the caller.
type ReportInput struct {
	// DisputeID is the dispute; FinalStatus the s value that resolved it
	// (settled, released, seller-refunded).
	DisputeID, FinalStatus string
	// SessionID is the dispute's latest session ("" when it never had
	// one); SessionState that session's state ("" when unknown).
	SessionID    string
	SessionState string
	// Classification and Confidence are the last recorded classification,
	// used only when HasClassification.
	Classification    string
	Confidence        float64
	HasClassification bool
	// OutboundParties is how many distinct parties Serbero messaged in the
	// session (clamped to 0..2).
	OutboundParties int
	// TakeFailed: a dispute-scoped take_dispute_issued with outcome
	// failure exists. Used only without a session.
	TakeFailed bool
	// ReasoningDeclined: a dispute-scoped reasoning_verdict with decision
	// escalate, or a dispute-scoped escalation_recommended, exists. Used
	// only without a session (and when TakeFailed is false).
	ReasoningDeclined bool
}

func (in ReportInput) outbound() int { return min(max(in.OutboundParties, 0), 2) }

func (in ReportInput) confidence() string { return strconv.FormatFloat(in.Confidence, 'f', 2, 64) }

// Narrative is the report's closing sentence group: the final status, then
// one sentence each about the session, the classification and the
// messages Serbero sent, separated by spaces. The status, the state and
// the label are wrapped in backticks.
func Narrative(in ReportInput) string {
	var session string
	switch {
	case in.SessionID != "" && in.SessionState != "":
		session = "Session " + in.SessionID + " was in state `" + in.SessionState + "`."
	case in.SessionID != "":
		session = "Session " + in.SessionID + " was active."
	case in.TakeFailed:
		session = "No mediation session was opened \u2014 reasoning cleared the dispute for mediation but the" +
			" take-dispute exchange with Mostro did not complete."
	case in.ReasoningDeclined:
		session = "No mediation session was opened \u2014 the reasoning verdict recommended escalation before" +
			" any take was issued."
	default:
		session = "No mediation session was opened for this dispute."
	}
	classification := "No classification was recorded."
	if in.HasClassification {
		classification = "Serbero's last recorded classification was `" + in.Classification +
			"` (confidence " + in.confidence() + ")."
	}
	var outbound string
	switch in.outbound() {
	case 0:
		outbound = "No outbound party-facing messages were dispatched."
	case 1:
		outbound = "Serbero messaged one party before the dispute was resolved externally."
	default:
		outbound = "Serbero messaged both parties before the dispute was resolved externally."
	}
	return "Dispute closed with final status `" + in.FinalStatus + "`. " + session + " " + classification + " " + outbound
}

// ReportDM is the final resolution report sent to every solver
// (mediation_resolution_report/v1), lines joined by "\n":
//
//	mediation_resolution_report/v1
//	Dispute: <dispute id>
//	Session: <session id>              (or: Session: <none — dispute-scoped handoff>)
//	Classification: <label> (confidence <x.xx>)  (or: Classification: <none recorded>)
//	Outbound party messages: <0|1|2>
//	Final dispute status: <status>
//
//	<narrative>
func ReportDM(in ReportInput) string {
	session := "<none \u2014 dispute-scoped handoff>"
	if in.SessionID != "" {
		session = in.SessionID
	}
	classification := "<none recorded>"
	if in.HasClassification {
		classification = in.Classification + " (confidence " + in.confidence() + ")"
	}
	return strings.Join([]string{
		ReportPrefix,
		"Dispute: " + in.DisputeID,
		"Session: " + session,
		"Classification: " + classification,
		fmt.Sprintf("Outbound party messages: %d", in.outbound()),
		"Final dispute status: " + in.FinalStatus,
		"",
		Narrative(in),
	}, "\n")
}

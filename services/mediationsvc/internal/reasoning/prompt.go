package reasoning

import (
	"strconv"
	"strings"
)

// ClassificationOutputContract ends every classification prompt: the JSON
// the model must return. The parser (ParseClassification) enforces it.
const ClassificationOutputContract = `Reply with one JSON object and nothing else (no Markdown fence, no prose around it). Keys:
- "classification": exactly one of "coordination_failure_resolvable", "conflicting_claims", "suspected_fraud", "unclear", "not_suitable_for_mediation".
- "confidence": a number from 0 to 1: how sure you are of the classification.
- "suggested_action": exactly one of "ask_clarification", "summarize", "escalate".
- "rationale": a string explaining your reasoning for the human solver's audit; it is never shown to the parties.
- "flags": an array with zero or more of "fraud_risk", "conflicting_claims", "low_info", "unresponsive_party", "authority_boundary_attempt".
- "buyer_clarification" and "seller_clarification": required and non-empty when "suggested_action" is "ask_clarification". Each is the complete message for that party alone, written for their role: ask the buyer whether the fiat payment was sent and what proof they can share; ask the seller whether the fiat payment arrived and what their account shows. Do not start them with "Buyer:" or "Seller:" (the transport adds routing). Write finished text: no placeholders, no brackets to fill in. Never ask or tell a party to release, send, refund or move funds, and never claim that anything has been decided.
- "suggested_action_detail": optional; only with "escalate", a short reason.
If you cannot write a useful question for one of the parties, choose "summarize" or "escalate" instead of "ask_clarification".`

// SummaryOutputContract ends every summary prompt.
const SummaryOutputContract = `Write a short, neutral summary of the dispute for the assigned human solver: what each party said, what is confirmed and what is not. Then, on its own single line, write "SUGGESTED_NEXT_STEP:" followed by one next step for the solver. Then end with a line starting "RATIONALE:" followed by your reasoning. Do not move, release or refund funds, do not settle or cancel anything, and do not claim final authority: the solver decides.`

// TranscriptText renders transcript lines as "[<inner_event_created_at>]
// <party>: <content>", one per line.
func TranscriptText(lines []TranscriptLine) string {
	var b strings.Builder
	for i, l := range lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteByte('[')
		b.WriteString(strconv.FormatInt(l.InnerEventCreatedAt, 10))
		b.WriteString("] ")
		b.WriteString(strings.ToLower(string(l.Party)))
		b.WriteString(": ")
		b.WriteString(l.Content)
	}
	return b.String()
}

// ClassificationPrompt is the user prompt of Classify: session metadata,
// the four policy texts of the bundle, the transcript and the output
// contract, as sections separated by blank lines. The system message is
// the bundle's system text.
func ClassificationPrompt(req ClassificationRequest) string {
	meta := strings.Join([]string{
		"session_id: " + req.SessionID,
		"dispute_id: " + req.DisputeID,
		"initiator: " + req.InitiatorRole,
		"prompt_bundle_id: " + req.Bundle.ID,
		"policy_hash: " + req.Bundle.PolicyHash,
		"round_count: " + strconv.FormatInt(req.Context.RoundCount, 10),
	}, "\n")
	return sections(
		"## Session metadata", meta,
		"## Classification policy (from bundle)", req.Bundle.Classification,
		"## Escalation policy (from bundle)", req.Bundle.Escalation,
		"## Mediation style (from bundle)", req.Bundle.MediationStyle,
		"## Message templates (from bundle)", req.Bundle.MessageTemplates,
		"## Transcript", TranscriptText(req.Transcript),
		"## Output contract", ClassificationOutputContract,
	)
}

// SummaryPrompt is the user prompt of Summarize.
func SummaryPrompt(req SummaryRequest) string {
	meta := strings.Join([]string{
		"session_id: " + req.SessionID,
		"dispute_id: " + req.DisputeID,
		"prompt_bundle_id: " + req.Bundle.ID,
		"policy_hash: " + req.Bundle.PolicyHash,
		"classification: " + string(req.Classification),
		"confidence: " + strconv.FormatFloat(req.Confidence, 'f', 2, 64),
	}, "\n")
	return sections(
		"## Session metadata", meta,
		"## Mediation style (from bundle)", req.Bundle.MediationStyle,
		"## Message templates (from bundle)", req.Bundle.MessageTemplates,
		"## Escalation policy (from bundle, for reference)", req.Bundle.Escalation,
		"## Transcript", TranscriptText(req.Transcript),
		"## Output contract", SummaryOutputContract,
	)
}

// sections joins heading/body pairs: "heading\nbody", separated by a blank
// line.
func sections(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if i > 0 {
			b.WriteString("\n\n")
		}
		b.WriteString(pairs[i])
		b.WriteByte('\n')
		b.WriteString(strings.TrimRight(pairs[i+1], "\n"))
	}
	return b.String()
}

package policy_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

const (
	buyerQ  = "Hello, I'm Serbero, an automated assistant. Did you send the fiat payment, and what proof can you share?"
	sellerQ = "Hello, I'm Serbero, an automated assistant. Did the fiat payment arrive in your account?"
)

func ask(conf float64, flags ...reasoning.Flag) reasoning.ClassificationResponse {
	return reasoning.ClassificationResponse{
		Classification: reasoning.LabelUnclear, Confidence: conf, Flags: flags,
		Action: reasoning.Action{Kind: reasoning.ActionAskClarification, BuyerText: buyerQ, SellerText: sellerQ},
	}
}

func askTexts(buyer, seller string) reasoning.ClassificationResponse {
	c := ask(0.9)
	c.Action.BuyerText, c.Action.SellerText = buyer, seller
	return c
}

func summarize(label reasoning.Label, conf float64) reasoning.ClassificationResponse {
	return reasoning.ClassificationResponse{Classification: label, Confidence: conf, Action: reasoning.Action{Kind: reasoning.ActionSummarize}}
}

func escalateAction(conf float64) reasoning.ClassificationResponse {
	return reasoning.ClassificationResponse{Classification: reasoning.LabelNotSuitableForMediation, Confidence: conf,
		Action: reasoning.Action{Kind: reasoning.ActionEscalate, EscalateReason: "threats"}}
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      reasoning.ClassificationResponse
		round   policy.Round
		outcome policy.Outcome
		trigger policy.Trigger
		rule    string
	}{
		// Rule 1..3: flags, in order, dominate everything after them.
		{"FraudFlagBeatsAction", ask(0.95, reasoning.FlagFraudRisk), policy.Initial(), policy.OutcomeEscalate, policy.TriggerFraudIndicator, "fraud_flag"},
		{"FraudFlagBeatsConflicting", ask(0.9, reasoning.FlagConflictingClaims, reasoning.FlagFraudRisk), policy.Initial(), policy.OutcomeEscalate, policy.TriggerFraudIndicator, "fraud_flag"},
		{"ConflictingFlag", ask(0.9, reasoning.FlagConflictingClaims), policy.MidSession(1), policy.OutcomeEscalate, policy.TriggerConflictingClaims, "conflicting_claims_flag"},
		{"ConflictingBeatsAuthorityFlag", ask(0.9, reasoning.FlagAuthorityBoundaryAttempt, reasoning.FlagConflictingClaims), policy.Initial(), policy.OutcomeEscalate, policy.TriggerConflictingClaims, "conflicting_claims_flag"},
		{"AuthorityFlag", ask(0.9, reasoning.FlagAuthorityBoundaryAttempt), policy.MidSession(1), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_flag"},
		{"LowConfidenceSummarizeNoFlag", summarize(reasoning.LabelCoordinationFailureResolvable, 0.1), policy.Initial(), policy.OutcomeEscalate, policy.TriggerLowConfidence, "low_confidence"},
		{"AuthorityFlagDominatesLowConfidence", withFlags(summarize(reasoning.LabelCoordinationFailureResolvable, 0.1), reasoning.FlagAuthorityBoundaryAttempt), policy.Initial(), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_flag"},
		// Informational flags do nothing.
		{"InformationalFlags", ask(0.9, reasoning.FlagLowInfo, reasoning.FlagUnresponsiveParty), policy.Initial(), policy.OutcomeAskClarification, "", "ask"},
		// Rule 4 (gap closed): a question that oversteps authority.
		{"QuestionTellsRelease", askTexts(buyerQ, "Please release the sats to the buyer now."), policy.Initial(), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionTellsRefund", askTexts("You should refund the seller.", sellerQ), policy.MidSession(1), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionTellsSend", askTexts("You must send the bitcoin.", sellerQ), policy.MidSession(1), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionClaimsDecision", askTexts("I have decided in favour of the seller.", sellerQ), policy.Initial(), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionClaimsClosed", askTexts(buyerQ, "This dispute is now   CLOSED."), policy.Initial(), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionAdminCommand", askTexts("Run admin-settle please.", sellerQ), policy.Initial(), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionAuthorityBeatsLowConfidence", withConf(askTexts("Please release the funds.", sellerQ), 0.1), policy.MidSession(5), policy.OutcomeEscalate, policy.TriggerAuthorityBoundaryAttempt, "authority_phrase_in_question"},
		{"QuestionAboutPaymentIsFine", askTexts("Did you send the fiat payment yesterday? Can you share the receipt?", "Has the money arrived? What does your statement show?"), policy.Initial(), policy.OutcomeAskClarification, "", "ask"},
		// Rule 5: low confidence and the bypass window.
		{"LowConfidenceAskInitialBypass", ask(0.4), policy.Initial(), policy.OutcomeAskClarification, "", "ask"},
		{"LowConfidenceAskFollowup1", ask(0.4), policy.MidSession(1), policy.OutcomeAskClarification, "", "ask"},
		{"LowConfidenceAskFollowup3", ask(0.2), policy.MidSession(3), policy.OutcomeAskClarification, "", "ask"},
		{"LowConfidenceAskFollowup4", ask(0.2), policy.MidSession(4), policy.OutcomeEscalate, policy.TriggerLowConfidence, "low_confidence"},
		{"LowConfidenceSummarizeInitial", summarize(reasoning.LabelCoordinationFailureResolvable, 0.49), policy.Initial(), policy.OutcomeEscalate, policy.TriggerLowConfidence, "low_confidence"},
		{"LowConfidenceEscalateAction", escalateAction(0.3), policy.Initial(), policy.OutcomeEscalate, policy.TriggerLowConfidence, "low_confidence"},
		{"ConfidenceAtThreshold", ask(0.5), policy.MidSession(9), policy.OutcomeAskClarification, "", "ask"},
		// Rule 6: the model's escalate becomes reasoning_unavailable.
		{"ModelEscalate", escalateAction(0.9), policy.Initial(), policy.OutcomeEscalate, policy.TriggerReasoningUnavailable, "model_escalate"},
		// Rule 7: blank question, placeholder (gap closed), ask.
		{"BlankBuyer", askTexts("  ", sellerQ), policy.Initial(), policy.OutcomeEscalate, policy.TriggerReasoningUnavailable, "blank_question"},
		{"BlankSeller", askTexts(buyerQ, ""), policy.MidSession(2), policy.OutcomeEscalate, policy.TriggerReasoningUnavailable, "blank_question"},
		{"PlaceholderBrackets", askTexts("Hello, I'm Serbero. [SPECIFIC_QUESTION]", sellerQ), policy.Initial(), policy.OutcomeEscalate, policy.TriggerInvalidModelOutput, "placeholder_in_question"},
		{"PlaceholderBraces", askTexts(buyerQ, "Hi {{question}}"), policy.Initial(), policy.OutcomeEscalate, policy.TriggerInvalidModelOutput, "placeholder_in_question"},
		{"PlaceholderAngle", askTexts(buyerQ, "Hi <PARTY_NAME>, did it arrive?"), policy.Initial(), policy.OutcomeEscalate, policy.TriggerInvalidModelOutput, "placeholder_in_question"},
		{"Ask", ask(0.9), policy.MidSession(2), policy.OutcomeAskClarification, "", "ask"},
		// Rule 8: summarize only coordination failures.
		{"Summarize", summarize(reasoning.LabelCoordinationFailureResolvable, 0.85), policy.MidSession(2), policy.OutcomeSummarize, "", "summarize"},
		{"SummarizeFraudLabel", summarize(reasoning.LabelSuspectedFraud, 0.9), policy.MidSession(2), policy.OutcomeEscalate, policy.TriggerInvalidModelOutput, "summarize_wrong_label"},
		{"SummarizeUnclearLabel", summarize(reasoning.LabelUnclear, 0.9), policy.Initial(), policy.OutcomeEscalate, policy.TriggerInvalidModelOutput, "summarize_wrong_label"},
		// A label alone does not escalate (questions are sent).
		{"FraudLabelWithoutFlagAsks", withLabel(ask(0.9), reasoning.LabelSuspectedFraud), policy.Initial(), policy.OutcomeAskClarification, "", "ask"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := policy.Decide(tt.in, tt.round)
			require.Equal(t, tt.outcome, d.Outcome)
			require.Equal(t, tt.trigger, d.Trigger)
			require.Equal(t, tt.rule, d.Rule)
			require.Equal(t, tt.in.Classification, d.Classification)
			require.Equal(t, tt.in.Confidence, d.Confidence)
			if d.Outcome == policy.OutcomeAskClarification {
				require.Equal(t, tt.in.Action.BuyerText, d.BuyerText)
				require.Equal(t, tt.in.Action.SellerText, d.SellerText)
			} else {
				require.Empty(t, d.BuyerText+d.SellerText, "no question survives an escalation")
			}
		})
	}
}

func withFlags(c reasoning.ClassificationResponse, f ...reasoning.Flag) reasoning.ClassificationResponse {
	c.Flags = f
	return c
}

func withConf(c reasoning.ClassificationResponse, conf float64) reasoning.ClassificationResponse {
	c.Confidence = conf
	return c
}

func withLabel(c reasoning.ClassificationResponse, l reasoning.Label) reasoning.ClassificationResponse {
	c.Classification = l
	return c
}

func TestBypassWindow(t *testing.T) {
	t.Parallel()
	require.True(t, policy.Initial().InBypassWindow())
	require.True(t, policy.Initial().IsInitial())
	for n := 1; n <= 3; n++ {
		require.True(t, policy.MidSession(n).InBypassWindow(), n)
	}
	require.False(t, policy.MidSession(4).InBypassWindow())
	require.False(t, policy.MidSession(0).IsInitial(), "MidSession is never the opening round")
}

func TestCheckSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, summary, step string
		trigger             policy.Trigger
		reason              string
	}{
		{"Fine", "Buyer confirmed; seller confirmed.", "Solver should invoke AdminSettleDispute on Mostro.", "", ""},
		{"EmptySummary", " ", "x", policy.TriggerAuthorityBoundaryAttempt, policy.ReasonEmptySummary},
		{"EmptyStep", "s", "\n", policy.TriggerAuthorityBoundaryAttempt, policy.ReasonEmptySummary},
		{"ReleaseFunds", "The seller should Release The Funds.", "check", policy.TriggerAuthorityBoundaryAttempt, policy.ReasonAuthorityInSummary},
		{"AdminCancelInStep", "s", "run admin_cancel", policy.TriggerAuthorityBoundaryAttempt, policy.ReasonAuthorityInSummary},
		{"CloseTheDispute", "s", "Close the\n dispute now", policy.TriggerAuthorityBoundaryAttempt, policy.ReasonAuthorityInSummary},
		{"Placeholder", "Buyer said [AMOUNT] was sent.", "check", policy.TriggerInvalidModelOutput, policy.ReasonPlaceholderSummary},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := policy.CheckSummary(reasoning.SummaryResponse{SummaryText: tt.summary, SuggestedNextStep: tt.step})
			if tt.trigger == "" {
				require.Nil(t, c)
				return
			}
			require.NotNil(t, c)
			require.Equal(t, tt.trigger, c.Trigger)
			require.Equal(t, tt.reason, c.Reason)
		})
	}
	for _, p := range policy.SummaryAuthorityPhrases {
		c := policy.CheckSummary(reasoning.SummaryResponse{SummaryText: "x " + strings.ToUpper(p) + " y", SuggestedNextStep: "z"})
		require.NotNil(t, c, p)
	}
}

func TestCheckOutbound(t *testing.T) {
	t.Parallel()
	require.Empty(t, policy.CheckOutbound(buyerQ))
	v := policy.CheckOutbound("Please release the sats. [SPECIFIC_QUESTION]")
	require.Equal(t, []policy.Violation{
		{Kind: policy.ViolationAuthority, Match: "please release"},
		{Kind: policy.ViolationAuthority, Match: "release the sats"},
		{Kind: policy.ViolationPlaceholder, Match: "[SPECIFIC_QUESTION]"},
	}, v)
	require.True(t, policy.HasPlaceholder("x [PARTY NAME] y"))
	require.False(t, policy.HasPlaceholder("see [1] and [note] and a <b> tag"))
	for _, p := range policy.QuestionAuthorityPhrases {
		require.NotEmpty(t, policy.CheckOutbound("Well, "+p+" now."), p)
	}
}

// The shipped templates are copied by the model: no quoted template line
// may hold a placeholder or an authority phrase.
func TestShippedTemplatesPass(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "..", "prompts", "phase3-message-templates.md"))
	require.NoError(t, err)
	require.False(t, policy.HasPlaceholder(string(b)), "the templates file holds a placeholder")
	quoted := regexp.MustCompile(`(?m)^> ?(.*)$`).FindAllStringSubmatch(string(b), -1)
	require.NotEmpty(t, quoted)
	for _, q := range quoted {
		require.Empty(t, policy.CheckOutbound(q[1]), q[1])
	}
}

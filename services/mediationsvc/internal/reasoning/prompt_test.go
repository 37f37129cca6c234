package reasoning_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

func TestClassificationPrompt(t *testing.T) {
	t.Parallel()
	b := bundle.New("SYS", "CLS", "ESC", "STY", "TPL\n")
	got := reasoning.ClassificationPrompt(reasoning.ClassificationRequest{
		SessionID: "s-1", DisputeID: "d-1", InitiatorRole: "buyer", Bundle: b,
		Transcript: []reasoning.TranscriptLine{
			{Party: reasoning.PartySerbero, InnerEventCreatedAt: 100, Content: "Buyer: hi"},
			{Party: reasoning.PartyBuyer, InnerEventCreatedAt: 110, Content: "paid"},
		},
		Context: reasoning.Context{RoundCount: 1},
	})
	want := "## Session metadata\nsession_id: s-1\ndispute_id: d-1\ninitiator: buyer\nprompt_bundle_id: phase3-default\npolicy_hash: " + b.PolicyHash + "\nround_count: 1" +
		"\n\n## Classification policy (from bundle)\nCLS" +
		"\n\n## Escalation policy (from bundle)\nESC" +
		"\n\n## Mediation style (from bundle)\nSTY" +
		"\n\n## Message templates (from bundle)\nTPL" +
		"\n\n## Transcript\n[100] serbero: Buyer: hi\n[110] buyer: paid" +
		"\n\n## Output contract\n" + reasoning.ClassificationOutputContract
	require.Equal(t, want, got)
}

func TestSummaryPrompt(t *testing.T) {
	t.Parallel()
	b := bundle.New("SYS", "CLS", "ESC", "STY", "TPL")
	got := reasoning.SummaryPrompt(reasoning.SummaryRequest{
		SessionID: "s-1", DisputeID: "d-1", Bundle: b, Classification: reasoning.LabelCoordinationFailureResolvable, Confidence: 0.875,
	})
	want := "## Session metadata\nsession_id: s-1\ndispute_id: d-1\nprompt_bundle_id: phase3-default\npolicy_hash: " + b.PolicyHash +
		"\nclassification: coordination_failure_resolvable\nconfidence: 0.88" +
		"\n\n## Mediation style (from bundle)\nSTY" +
		"\n\n## Message templates (from bundle)\nTPL" +
		"\n\n## Escalation policy (from bundle, for reference)\nESC" +
		"\n\n## Transcript\n" +
		"\n\n## Output contract\n" + reasoning.SummaryOutputContract
	require.Equal(t, want, got)
	require.Contains(t, got, "SUGGESTED_NEXT_STEP:")
	require.Contains(t, got, "RATIONALE:")
}

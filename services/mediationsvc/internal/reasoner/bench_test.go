package reasoner_test

import (
	"strconv"
	"testing"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// BenchmarkDecisionCore measures the decision core alone, per call: parse
// a model answer, decide, and insert its rationale (a new text and a new
// occurrence each time) on real Postgres. The provider call is not part
// of it.
func BenchmarkDecisionCore(b *testing.B) {
	db := pgdbtest.NewDB(b)
	ctx := b.Context()
	if _, err := db.Pool.Exec(ctx, `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-bench', 'e', 'm', 'buyer', 1, 1)`); err != nil {
		b.Fatal(err)
	}
	s := store.New(db.Pool)
	head := `{"classification":"unclear","confidence":0.42,"suggested_action":"ask_clarification",` +
		`"buyer_clarification":"Hello, I'm Serbero, an automated mediation assistant helping the assigned solver. Did you send the fiat payment, and what proof can you share?",` +
		`"seller_clarification":"Hello, I'm Serbero, an automated mediation assistant helping the assigned solver. Did the fiat payment arrive in your account?",` +
		`"flags":["low_info"],"rationale":"The transcript is empty; both parties must be asked for the payment facts before anything can be judged. run `
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		resp, err := reasoning.ParseClassification(head + strconv.Itoa(i) + `"}`)
		if err != nil {
			b.Fatal(err)
		}
		d := policy.Decide(resp, policy.Initial())
		if d.Outcome != policy.OutcomeAskClarification {
			b.Fatalf("decision %+v", d)
		}
		if _, err := s.RecordRationale(ctx, nil, resp.Rationale.Reveal(), store.RationaleOccurrence{
			DisputeID: "d-bench", Operation: store.OperationClassify, Provider: "openai", Model: "gpt-4o-mini",
			PromptBundleID: "phase3-default", PolicyHash: "h", GeneratedAt: int64(i),
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseAndDecide is the pure part of the decision core.
func BenchmarkParseAndDecide(b *testing.B) {
	in := `{"classification":"coordination_failure_resolvable","confidence":0.88,"suggested_action":"summarize","flags":[],"rationale":"aligned on timing"}`
	b.ReportAllocs()
	for b.Loop() {
		resp, err := reasoning.ParseClassification(in)
		if err != nil {
			b.Fatal(err)
		}
		if policy.Decide(resp, policy.MidSession(2)).Outcome != policy.OutcomeSummarize {
			b.Fatal("decision")
		}
	}
}

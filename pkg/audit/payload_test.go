package audit_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/audit"
)

func ptr[T any](v T) *T { return &v }

// goldenCase is one payload with the exact JSON it must serialise to and
// the key set the reference's catalogue lists for it.
type goldenCase struct {
	name    string
	payload audit.Payload
	kind    audit.Kind
	scope   audit.Scope
	json    string
	keys    []string
}

func goldenCases() []goldenCase {
	return []goldenCase{
		{"start_attempt_started", audit.StartAttemptStarted{DisputeID: "d1", Trigger: audit.StartTriggerDetected},
			audit.KindStartAttemptStarted, audit.ScopeDispute,
			`{"dispute_id":"d1","trigger":"detected"}`, []string{"dispute_id", "trigger"}},
		{"start_attempt_stopped", audit.StartAttemptStopped{DisputeID: "d1", StopReason: audit.StopReasonAuthPending},
			audit.KindStartAttemptStopped, audit.ScopeDispute,
			`{"dispute_id":"d1","stop_reason":"auth_pending"}`, []string{"dispute_id", "stop_reason"}},
		{"start_attempt_stopped policy_escalate", audit.StartAttemptPolicyEscalate{DisputeID: "d1", Trigger: "fraud_indicator"},
			audit.KindStartAttemptStopped, audit.ScopeDispute,
			`{"dispute_id":"d1","reason":"policy_escalate","trigger":"fraud_indicator"}`, []string{"dispute_id", "reason", "trigger"}},
		{"reasoning_verdict ask_clarification", audit.VerdictAskClarification("d1"),
			audit.KindReasoningVerdict, audit.ScopeDispute,
			`{"dispute_id":"d1","decision":"ask_clarification"}`, []string{"dispute_id", "decision"}},
		{"reasoning_verdict summarize", audit.VerdictSummarize("d1", "coordination_failure_resolvable", 0.92),
			audit.KindReasoningVerdict, audit.ScopeDispute,
			`{"dispute_id":"d1","decision":"summarize","classification":"coordination_failure_resolvable","confidence":0.92}`,
			[]string{"dispute_id", "decision", "classification", "confidence"}},
		{"reasoning_verdict summarize at confidence 0", audit.VerdictSummarize("d1", "x", 0),
			audit.KindReasoningVerdict, audit.ScopeDispute,
			`{"dispute_id":"d1","decision":"summarize","classification":"x","confidence":0}`,
			[]string{"dispute_id", "decision", "classification", "confidence"}},
		{"reasoning_verdict escalate", audit.VerdictEscalate("d1", "low_confidence"),
			audit.KindReasoningVerdict, audit.ScopeDispute,
			`{"dispute_id":"d1","decision":"escalate","trigger":"low_confidence"}`, []string{"dispute_id", "decision", "trigger"}},
		{"take_dispute_issued success", audit.TakeSucceeded("d1"),
			audit.KindTakeDisputeIssued, audit.ScopeDispute,
			`{"dispute_id":"d1","outcome":"success"}`, []string{"dispute_id", "outcome"}},
		{"take_dispute_issued failure", audit.TakeFailed("d1", ""),
			audit.KindTakeDisputeIssued, audit.ScopeDispute,
			`{"dispute_id":"d1","outcome":"failure","reason":""}`, []string{"dispute_id", "outcome", "reason"}},
		{"session_opened", audit.SessionOpened{},
			audit.KindSessionOpened, audit.ScopeSession, `{}`, []string{}},
		{"classification_produced", audit.ClassificationProduced{Classification: "c", Confidence: 0.5, RationaleID: "r1"},
			audit.KindClassificationProduced, audit.ScopeSession,
			`{"classification":"c","confidence":0.5,"rationale_id":"r1"}`, []string{"classification", "confidence", "rationale_id"}},
		{"outbound_sent", audit.OutboundSent{InnerEventID: "e1", SharedPubkey: "pk"},
			audit.KindOutboundSent, audit.ScopeSession,
			`{"inner_event_id":"e1","shared_pubkey":"pk"}`, []string{"inner_event_id", "shared_pubkey"}},
		{"summary_generated", audit.SummaryGenerated{Classification: "c", Confidence: 0.9, RationaleID: "r1"},
			audit.KindSummaryGenerated, audit.ScopeSession,
			`{"classification":"c","confidence":0.9,"rationale_id":"r1"}`, []string{"classification", "confidence", "rationale_id"}},
		{"escalation_recommended (handoff)", audit.EscalationRecommended{DisputeID: "d1", Trigger: "round_limit"},
			audit.KindEscalationRecommended, audit.ScopeEither,
			`{"dispute_id":"d1","evidence_refs":[],"rationale_refs":[],"trigger":"round_limit"}`,
			[]string{"dispute_id", "evidence_refs", "rationale_refs", "trigger"}},
		{"escalation_recommended (summary path)", audit.EscalationRecommendedSummaryPath{Reason: "no solver recipients configured", SessionID: "s1", Trigger: "notification_failed"},
			audit.KindEscalationRecommended, audit.ScopeSession,
			`{"reason":"no solver recipients configured","session_id":"s1","trigger":"notification_failed"}`,
			[]string{"reason", "session_id", "trigger"}},
		{"escalation_recommended (bundle missing)", audit.EscalationRecommendedBundleMissing{LoadedHash: "h2", PinnedHash: "h1", SessionID: "s1"},
			audit.KindEscalationRecommended, audit.ScopeSession,
			`{"loaded_hash":"h2","pinned_hash":"h1","session_id":"s1","trigger":"policy_bundle_missing"}`,
			[]string{"loaded_hash", "pinned_hash", "session_id", "trigger"}},
		{"handoff_prepared", audit.HandoffPrepared{Package: json.RawMessage(`{"dispute_id":"d1","trigger":"t"}`)},
			audit.KindHandoffPrepared, audit.ScopeUnchecked,
			`{"dispute_id":"d1","trigger":"t"}`, []string{"dispute_id", "trigger"}},
		{"reasoning_call_failed (dispute)", audit.ReasoningCallFailed{DisputeID: "d1", AttemptCount: 1, ErrorCategory: "unreachable", Model: "m", Provider: "openai"},
			audit.KindReasoningCallFailed, audit.ScopeEither,
			`{"dispute_id":"d1","attempt_count":1,"error_category":"unreachable","model":"m","provider":"openai"}`,
			[]string{"dispute_id", "attempt_count", "error_category", "model", "provider"}},
		{"reasoning_call_failed (session)", audit.ReasoningCallFailed{AttemptCount: 1, ErrorCategory: "timeout", Model: "m", Provider: "anthropic"},
			audit.KindReasoningCallFailed, audit.ScopeEither,
			`{"attempt_count":1,"error_category":"timeout","model":"m","provider":"anthropic"}`,
			[]string{"attempt_count", "error_category", "model", "provider"}},
		{"superseded_by_human", audit.SupersededByHuman{DisputeID: "d1", EventID: "ev", Reason: audit.ReasonDisputeResolvedExternally, ResolutionStatus: "settled"},
			audit.KindSupersededByHuman, audit.ScopeSession,
			`{"dispute_id":"d1","event_id":"ev","reason":"dispute_resolved_externally","resolution_status":"settled"}`,
			[]string{"dispute_id", "event_id", "reason", "resolution_status"}},
		{"session_closed", audit.SessionClosed{DisputeID: "d1", Reason: audit.ReasonDisputeResolvedExternally},
			audit.KindSessionClosed, audit.ScopeSession,
			`{"dispute_id":"d1","reason":"dispute_resolved_externally"}`, []string{"dispute_id", "reason"}},
		{"resolved_externally_reported (nothing known)", audit.ResolvedExternallyReported{DisputeID: "d1", FinalDisputeStatus: "settled", Narrative: "n"},
			audit.KindResolvedExternallyReported, audit.ScopeEither,
			`{"classification":null,"confidence":null,"dispute_id":"d1","final_dispute_status":"settled","narrative":"n","outbound_party_messages_count":0,"session_id":null}`,
			[]string{"classification", "confidence", "dispute_id", "final_dispute_status", "narrative", "outbound_party_messages_count", "session_id"}},
		{"resolved_externally_reported (session)", audit.ResolvedExternallyReported{Classification: ptr("c"), Confidence: ptr(0.75), DisputeID: "d1", FinalDisputeStatus: "released", Narrative: "n", OutboundPartyMessagesCount: 2, SessionID: ptr("s1")},
			audit.KindResolvedExternallyReported, audit.ScopeEither,
			`{"classification":"c","confidence":0.75,"dispute_id":"d1","final_dispute_status":"released","narrative":"n","outbound_party_messages_count":2,"session_id":"s1"}`,
			[]string{"classification", "confidence", "dispute_id", "final_dispute_status", "narrative", "outbound_party_messages_count", "session_id"}},
		{"auth_retry_attempt", audit.AuthRetryAttempt{Attempt: 2, Error: "no evidence"},
			audit.KindAuthRetryAttempt, audit.ScopeDaemon, `{"attempt":2,"error":"no evidence"}`, []string{"attempt", "error"}},
		{"auth_retry_recovered", audit.AuthRetryRecovered{Attempt: 3},
			audit.KindAuthRetryRecovered, audit.ScopeDaemon, `{"attempt":3}`, []string{"attempt"}},
		{"auth_retry_terminated", audit.AuthRetryTerminated{Attempt: 24, CumulativeSecs: 86400},
			audit.KindAuthRetryTerminated, audit.ScopeDaemon, `{"attempt":24,"cumulative_secs":86400}`, []string{"attempt", "cumulative_secs"}},
		{"escalation_dispatched", audit.EscalationDispatched{DispatchID: "u1", DisputeID: "d1", HandoffEventID: 7, TargetSolver: "a,b", Status: audit.DispatchStatusDispatched, FallbackBroadcast: true},
			audit.KindEscalationDispatched, audit.ScopeEither,
			`{"dispatch_id":"u1","dispute_id":"d1","handoff_event_id":7,"target_solver":"a,b","status":"dispatched","fallback_broadcast":true}`,
			[]string{"dispatch_id", "dispute_id", "handoff_event_id", "target_solver", "status", "fallback_broadcast"}},
		{"escalation_superseded", audit.EscalationSuperseded{DisputeID: "d1", HandoffEventID: 7, Reason: audit.ReasonDisputeAlreadyResolved},
			audit.KindEscalationSuperseded, audit.ScopeEither,
			`{"dispute_id":"d1","handoff_event_id":7,"reason":"dispute_already_resolved"}`, []string{"dispute_id", "handoff_event_id", "reason"}},
		{"escalation_dispatch_unroutable", audit.EscalationDispatchUnroutable{DisputeID: "d1", HandoffEventID: 7, ConfiguredSolverCount: 2},
			audit.KindEscalationDispatchUnroutable, audit.ScopeEither,
			`{"dispute_id":"d1","handoff_event_id":7,"configured_solver_count":2,"fallback_to_all_solvers":false}`,
			[]string{"dispute_id", "handoff_event_id", "configured_solver_count", "fallback_to_all_solvers"}},
		{"escalation_dispatch_parse_failed", audit.EscalationDispatchParseFailed{DisputeID: "unknown", HandoffEventID: 7, Reason: audit.ParseFailedDeserialize, Detail: "EOF"},
			audit.KindEscalationDispatchParseFailed, audit.ScopeEither,
			`{"dispute_id":"unknown","handoff_event_id":7,"reason":"deserialize_failed","detail":"EOF"}`,
			[]string{"dispute_id", "handoff_event_id", "reason", "detail"}},
	}
}

// TestPayloadGolden pins every payload type to the exact JSON it writes
// and to the key set of the reference's catalogue (written out here, not
// derived from the structs).
func TestPayloadGolden(t *testing.T) {
	t.Parallel()
	covered := map[audit.Kind]bool{}
	for _, tt := range goldenCases() {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.kind, tt.payload.Kind())
			require.Equal(t, tt.scope, tt.payload.Scope())
			b, err := json.Marshal(tt.payload)
			require.NoError(t, err)
			require.Equal(t, tt.json, string(b))
			var obj map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(b, &obj))
			keys := make([]string, 0, len(obj))
			for k := range obj {
				keys = append(keys, k)
			}
			want := slices.Clone(tt.keys)
			slices.Sort(keys)
			slices.Sort(want)
			require.Equal(t, want, keys)
		})
		covered[tt.kind] = true
	}
	for _, k := range audit.Kinds() {
		require.True(t, covered[k], "kind %s has no golden case", k)
	}
}

// TestDecodeRoundTrip: what a payload writes, Decode reads back.
func TestDecodeRoundTrip(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, p audit.Payload, decode func(audit.Record) (audit.Payload, error)) {
		t.Helper()
		b, err := json.Marshal(p)
		require.NoError(t, err)
		got, err := decode(audit.Record{ID: 1, Kind: p.Kind(), Payload: b})
		require.NoError(t, err)
		require.Equal(t, p, got)
	}
	check(t, audit.VerdictSummarize("d", "c", 0.5), func(r audit.Record) (audit.Payload, error) { return audit.Decode[audit.ReasoningVerdict](r) })
	check(t, audit.VerdictEscalate("d", "t"), func(r audit.Record) (audit.Payload, error) { return audit.Decode[audit.ReasoningVerdict](r) })
	check(t, audit.TakeFailed("d", "timeout"), func(r audit.Record) (audit.Payload, error) { return audit.Decode[audit.TakeDisputeIssued](r) })
	check(t, audit.EscalationRecommended{DisputeID: "d", Trigger: "t", EvidenceRefs: []string{"e"}, RationaleRefs: []string{}},
		func(r audit.Record) (audit.Payload, error) { return audit.Decode[audit.EscalationRecommended](r) })
	check(t, audit.EscalationRecommendedBundleMissing{LoadedHash: "a", PinnedHash: "b", SessionID: "s"},
		func(r audit.Record) (audit.Payload, error) {
			return audit.Decode[audit.EscalationRecommendedBundleMissing](r)
		})
	check(t, audit.ResolvedExternallyReported{DisputeID: "d", SessionID: ptr("s"), Confidence: ptr(0.5)},
		func(r audit.Record) (audit.Payload, error) { return audit.Decode[audit.ResolvedExternallyReported](r) })

	_, err := audit.Decode[audit.SessionClosed](audit.Record{ID: 9, Kind: audit.KindSessionOpened, Payload: []byte(`{}`)})
	require.ErrorContains(t, err, "kind session_opened, not session_closed")
}

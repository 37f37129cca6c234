package reasoning_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

func requireMalformed(t *testing.T, err error, contains string) {
	t.Helper()
	require.Error(t, err)
	var e *reasoning.Error
	require.ErrorAs(t, err, &e, "typed error, got %T", err)
	require.Equal(t, reasoning.CategoryMalformedResponse, e.Category)
	require.Equal(t, reasoning.CategoryMalformedResponse, reasoning.CategoryOf(err))
	if contains != "" {
		require.ErrorContains(t, err, contains)
	}
}

func TestParseClassification(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string
		check   func(t *testing.T, r reasoning.ClassificationResponse)
	}{
		{
			name: "AskClarificationTrimmed",
			in:   `{"classification":"unclear","confidence":0.4,"suggested_action":"ask_clarification","buyer_clarification":"  Did you pay? ","seller_clarification":"Did it arrive?\n","rationale":"thin","flags":["low_info"]}`,
			check: func(t *testing.T, r reasoning.ClassificationResponse) {
				require.Equal(t, reasoning.LabelUnclear, r.Classification)
				require.InDelta(t, 0.4, r.Confidence, 1e-9)
				require.Equal(t, reasoning.Action{Kind: reasoning.ActionAskClarification, BuyerText: "Did you pay?", SellerText: "Did it arrive?"}, r.Action)
				require.Equal(t, []reasoning.Flag{reasoning.FlagLowInfo}, r.Flags)
				require.Equal(t, "thin", r.Rationale.Reveal())
			},
		},
		{
			name: "SummarizeDefaults",
			in:   `{"classification":"coordination_failure_resolvable","confidence":1,"suggested_action":"summarize","extra":{"ignored":true}}`,
			check: func(t *testing.T, r reasoning.ClassificationResponse) {
				require.Equal(t, reasoning.ActionSummarize, r.Action.Kind)
				require.Empty(t, r.Flags)
				require.Empty(t, r.Rationale.Reveal())
			},
		},
		{
			name: "EscalateDetail",
			in:   `{"classification":"not_suitable_for_mediation","confidence":0.9,"suggested_action":"escalate","suggested_action_detail":"threats","buyer_clarification":null}`,
			check: func(t *testing.T, r reasoning.ClassificationResponse) {
				require.Equal(t, reasoning.Action{Kind: reasoning.ActionEscalate, EscalateReason: "threats"}, r.Action)
			},
		},
		{
			name:  "ConfidenceClampedHigh",
			in:    `{"classification":"unclear","confidence":7,"suggested_action":"escalate"}`,
			check: func(t *testing.T, r reasoning.ClassificationResponse) { require.Equal(t, 1.0, r.Confidence) },
		},
		{
			name:  "ConfidenceClampedLow",
			in:    `{"classification":"unclear","confidence":-0.3,"suggested_action":"escalate"}`,
			check: func(t *testing.T, r reasoning.ClassificationResponse) { require.Equal(t, 0.0, r.Confidence) },
		},
		{name: "NotJSON", in: "The dispute looks fine.", wantErr: "not JSON"},
		{name: "MarkdownFence", in: "```json\n{\"classification\":\"unclear\",\"confidence\":0.5,\"suggested_action\":\"escalate\"}\n```", wantErr: "not JSON"},
		{name: "Array", in: `[]`, wantErr: "not a JSON object"},
		{name: "TrailingData", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"escalate"} {}`, wantErr: "trailing data"},
		{name: "DuplicateKey", in: `{"classification":"unclear","classification":"suspected_fraud","confidence":0.5,"suggested_action":"escalate"}`, wantErr: "duplicate field `classification`"},
		{name: "MissingLabel", in: `{"confidence":0.5,"suggested_action":"escalate"}`, wantErr: "missing field `classification`"},
		{name: "UnknownLabel", in: `{"classification":"fine","confidence":0.5,"suggested_action":"escalate"}`, wantErr: `unknown classification "fine"`},
		{name: "LabelNotString", in: `{"classification":3,"confidence":0.5,"suggested_action":"escalate"}`, wantErr: "`classification` must be a string"},
		{name: "MissingConfidence", in: `{"classification":"unclear","suggested_action":"escalate"}`, wantErr: "missing field `confidence`"},
		{name: "ConfidenceString", in: `{"classification":"unclear","confidence":"0.5","suggested_action":"escalate"}`, wantErr: "`confidence` must be a number"},
		{name: "ConfidenceNull", in: `{"classification":"unclear","confidence":null,"suggested_action":"escalate"}`, wantErr: "`confidence` must be a number"},
		{name: "MissingAction", in: `{"classification":"unclear","confidence":0.5}`, wantErr: `unknown suggested_action ""`},
		{name: "UnknownAction", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"settle"}`, wantErr: `unknown suggested_action "settle"`},
		{name: "ActionNull", in: `{"classification":"unclear","confidence":0.5,"suggested_action":null}`, wantErr: "`suggested_action` must be a string"},
		{name: "UnknownFlag", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"escalate","flags":["urgent"]}`, wantErr: `unknown flag "urgent"`},
		{name: "FlagsNotArray", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"escalate","flags":"fraud_risk"}`, wantErr: "`flags` must be an array"},
		{name: "RationaleNotString", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"escalate","rationale":{}}`, wantErr: "`rationale` must be a string"},
		{name: "AskWithoutBuyer", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"ask_clarification","buyer_clarification":"  ","seller_clarification":"x"}`, wantErr: "ask_clarification requires non-empty buyer_clarification"},
		{name: "AskWithoutSeller", in: `{"classification":"unclear","confidence":0.5,"suggested_action":"ask_clarification","buyer_clarification":"x"}`, wantErr: "ask_clarification requires non-empty seller_clarification"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := reasoning.ParseClassification(tt.in)
			if tt.wantErr != "" {
				requireMalformed(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			tt.check(t, r)
		})
	}
}

func TestParseSummary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                       string
		in                         string
		wantErr                    string
		summary, step, rationaleIs string
	}{
		{name: "Both", in: "Buyer confirmed payment.\nSUGGESTED_NEXT_STEP: check the bank\nRATIONALE: parties aligned", summary: "Buyer confirmed payment.", step: "check the bank", rationaleIs: "parties aligned"},
		{name: "OnlyNextStep", in: "Summary here. SUGGESTED_NEXT_STEP: do x", summary: "Summary here.", step: "do x"},
		{name: "OnlyRationale", in: "Summary here.\nRATIONALE: because", summary: "Summary here.", rationaleIs: "because"},
		{name: "NoMarkers", in: "  Just a summary.  ", summary: "Just a summary."},
		{name: "FirstMarkerCounts", in: "S SUGGESTED_NEXT_STEP: a SUGGESTED_NEXT_STEP: b RATIONALE: r RATIONALE: q", summary: "S", step: "a SUGGESTED_NEXT_STEP: b", rationaleIs: "r RATIONALE: q"},
		{name: "CaseSensitive", in: "S suggested_next_step: a", summary: "S suggested_next_step: a"},
		{name: "OutOfOrder", in: "S RATIONALE: r SUGGESTED_NEXT_STEP: a", wantErr: "summary markers out of order"},
		{name: "EmptyBody", in: "  SUGGESTED_NEXT_STEP: a\nRATIONALE: r", wantErr: "empty summary body"},
		{name: "Empty", in: "", wantErr: "empty summary body"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := reasoning.ParseSummary(tt.in)
			if tt.wantErr != "" {
				requireMalformed(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.summary, r.SummaryText)
			require.Equal(t, tt.step, r.SuggestedNextStep)
			require.Equal(t, tt.rationaleIs, r.Rationale.Reveal())
		})
	}
}

// FuzzParseClassification: never panics; a success satisfies the output
// contract; a failure is a typed malformed_response error.
func FuzzParseClassification(f *testing.F) {
	for _, s := range []string{
		`{"classification":"unclear","confidence":0.4,"suggested_action":"ask_clarification","buyer_clarification":"a","seller_clarification":"b","rationale":"r","flags":["low_info"]}`,
		`{"classification":"coordination_failure_resolvable","confidence":0.9,"suggested_action":"summarize"}`,
		`{"classification":"suspected_fraud","confidence":1e3,"suggested_action":"escalate","flags":["fraud_risk","conflicting_claims"],"suggested_action_detail":null}`,
		`{"classification":"unclear","classification":"unclear","confidence":0,"suggested_action":"escalate"}`,
		"```json\n{}\n```", `[]`, `{}`, `null`, `{"confidence":-1}`, "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := reasoning.ParseClassification(in)
		if err != nil {
			var e *reasoning.Error
			if !errors.As(err, &e) || e.Category != reasoning.CategoryMalformedResponse {
				t.Fatalf("untyped error %T %v", err, err)
			}
			return
		}
		if !contains(reasoning.Labels, r.Classification) {
			t.Fatalf("unknown label %q", r.Classification)
		}
		if !(r.Confidence >= 0 && r.Confidence <= 1) {
			t.Fatalf("confidence %v outside [0,1]", r.Confidence)
		}
		for _, fl := range r.Flags {
			if !contains(reasoning.Flags, fl) {
				t.Fatalf("unknown flag %q", fl)
			}
		}
		switch r.Action.Kind {
		case reasoning.ActionAskClarification:
			if r.Action.BuyerText == "" || r.Action.SellerText == "" ||
				r.Action.BuyerText != strings.TrimSpace(r.Action.BuyerText) || r.Action.SellerText != strings.TrimSpace(r.Action.SellerText) {
				t.Fatalf("bad clarification texts %q %q", r.Action.BuyerText, r.Action.SellerText)
			}
		case reasoning.ActionSummarize, reasoning.ActionEscalate:
		default:
			t.Fatalf("unknown action %q", r.Action.Kind)
		}
	})
}

// FuzzParseSummary: never panics; a success has a trimmed non-empty
// summary free of both markers; a failure is typed.
func FuzzParseSummary(f *testing.F) {
	for _, s := range []string{
		"Buyer confirmed.\nSUGGESTED_NEXT_STEP: check\nRATIONALE: aligned",
		"RATIONALE: r SUGGESTED_NEXT_STEP: s", "SUGGESTED_NEXT_STEP:", "plain", "", "S RATIONALE:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, err := reasoning.ParseSummary(in)
		if err != nil {
			if reasoning.CategoryOf(err) != reasoning.CategoryMalformedResponse {
				t.Fatalf("untyped error %T %v", err, err)
			}
			return
		}
		if r.SummaryText == "" || r.SummaryText != strings.TrimSpace(r.SummaryText) {
			t.Fatalf("summary %q not trimmed or empty", r.SummaryText)
		}
		if strings.Contains(r.SummaryText, "SUGGESTED_NEXT_STEP:") || strings.Contains(r.SummaryText, "RATIONALE:") {
			t.Fatalf("summary holds a marker: %q", r.SummaryText)
		}
		if strings.Contains(r.SuggestedNextStep, "RATIONALE:") {
			t.Fatalf("next step holds the rationale marker: %q", r.SuggestedNextStep)
		}
		if utf8.ValidString(in) && !utf8.ValidString(r.SummaryText) {
			t.Fatalf("valid input gave invalid UTF-8")
		}
		if len(r.SummaryText)+len(r.SuggestedNextStep)+r.Rationale.Len() > len(in) {
			t.Fatalf("output longer than input")
		}
	})
}

func contains[T comparable](s []T, v T) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

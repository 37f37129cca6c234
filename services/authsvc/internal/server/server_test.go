package server

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

func TestTakeReport(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		req     *authsvcv1.ReportTakeOutcomeRequest
		want    revalidation.TakeReport
		wantErr bool
	}{
		{"took", &authsvcv1.ReportTakeOutcomeRequest{DisputeId: " d-1 ", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, ObservedAt: timestamppb.New(at)},
			revalidation.TakeReport{DisputeID: "d-1", Outcome: revalidation.TakeTook, ObservedAt: at}, false},
		{"status normalised", &authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO,
			CantDoReason: "invalid_pubkey", DisputeStatus: " In-Progress\n"},
			revalidation.TakeReport{DisputeID: "d-1", Outcome: revalidation.TakeCantDo, CantDoReason: "invalid_pubkey", DisputeStatus: "in-progress"}, false},
		{"no dispute", &authsvcv1.ReportTakeOutcomeRequest{Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK}, revalidation.TakeReport{}, true},
		{"only spaces", &authsvcv1.ReportTakeOutcomeRequest{DisputeId: " \t", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK}, revalidation.TakeReport{}, true},
		{"no outcome", &authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-1"}, revalidation.TakeReport{}, true},
		{"bad time", &authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK,
			ObservedAt: &timestamppb.Timestamp{Nanos: -1}}, revalidation.TakeReport{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := takeReport(tc.req)
			if tc.wantErr {
				require.Error(t, err)
				require.Equal(t, apperr.KindInvalidArgument, apperr.KindOf(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.want, got)
		})
	}
}

// The judgement of a cant-do invalid_pubkey follows the status reported.
func TestInvalidPubkeyJudgedByTheReportedStatus(t *testing.T) {
	t.Parallel()
	for status, want := range map[string]revalidation.EvidenceKind{
		"":                revalidation.EvidenceCantDoInvalidPubkey, // the reporter knew none
		"initiated":       revalidation.EvidenceCantDoInvalidPubkey,
		"INITIATED":       revalidation.EvidenceCantDoInvalidPubkey,
		"in-progress":     revalidation.EvidenceCantDoOther, // another solver took it first
		"In-Progress":     revalidation.EvidenceCantDoOther,
		"settled":         revalidation.EvidenceCantDoOther,
		"seller-refunded": revalidation.EvidenceCantDoOther,
	} {
		r, err := takeReport(&authsvcv1.ReportTakeOutcomeRequest{DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO,
			CantDoReason: "invalid_pubkey", DisputeStatus: status})
		require.NoError(t, err)
		ev := revalidation.ClassifyTake(r)
		require.Equal(t, want, ev.Kind, "status %q", status)
		if want == revalidation.EvidenceCantDoOther {
			require.Equal(t, revalidation.Inconclusive, ev.Kind.Verdict())
		}
	}
}

func FuzzTakeReport(f *testing.F) {
	f.Add("5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", int32(2), "invalid_pubkey", "initiated", "p-1")
	f.Add("d-1", int32(1), "", "", "")
	f.Add("  \x00é\xff", int32(3), "not_authorized", "in-progress", "x")
	f.Add("d", int32(9), "\u202e", "\t", "")
	f.Fuzz(func(t *testing.T, dispute string, outcome int32, reason, status, probe string) {
		req := &authsvcv1.ReportTakeOutcomeRequest{DisputeId: dispute, Outcome: authsvcv1.TakeOutcome(outcome),
			CantDoReason: reason, DisputeStatus: status, ProbeId: probe}
		r, err := takeReport(req)
		if err != nil {
			require.Equal(t, apperr.KindInvalidArgument, apperr.KindOf(err), "a refusal is a typed error")
			return
		}
		for _, s := range []string{r.DisputeID, r.CantDoReason, r.DisputeStatus} {
			require.True(t, utf8.ValidString(s))
		}
		require.NotEmpty(t, r.DisputeID)
		require.LessOrEqual(t, utf8.RuneCountInString(r.DisputeID), maxDisputeID)
		require.LessOrEqual(t, utf8.RuneCountInString(r.CantDoReason), maxCantDo)
		require.LessOrEqual(t, utf8.RuneCountInString(r.DisputeStatus), maxStatus)
		ev := revalidation.ClassifyTake(r)
		require.NotZero(t, ev.Kind)
		require.True(t, utf8.ValidString(ev.Summary))
	})
}

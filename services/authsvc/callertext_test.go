package authsvc_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

// Caller text is bounded by characters, never cut inside one: a reason of
// 199 characters plus "é" (201 bytes) used to be cut at 200 bytes, half a
// character that Postgres refuses, and the report was lost on every retry.
func TestCallerTextIsCutAtCharacterBoundaries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name, reason, wantReason string
	}{
		{"199 characters and é: kept whole", strings.Repeat("a", 199) + "é", strings.Repeat("a", 199) + "é"},
		{"200 characters and é: é dropped whole", strings.Repeat("a", 200) + "é", strings.Repeat("a", 200)},
		{"multi-byte throughout", strings.Repeat("ж", 250), strings.Repeat("ж", 200)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgdbtest.NewDB(t)
			in := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: fastTuning("a")})
			_, err := in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
				DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK,
			})
			require.NoError(t, err)

			resp, err := in.client.ReportAuthorizationLost(ctx, &authsvcv1.ReportAuthorizationLostRequest{
				Reason: tc.reason, DisputeId: strings.Repeat("d", 63) + "é",
			})
			require.NoError(t, err, "the report is stored, not refused")
			s := resp.GetState()
			require.Equal(t, stUnauthorized, s.GetState())
			require.Equal(t, "authorization loss reported: "+tc.wantReason, s.GetLastError())
			require.Equal(t, strings.Repeat("d", 63)+"é", s.GetEvidence().GetDisputeId())

			var raw []byte
			require.NoError(t, db.Pool.QueryRow(ctx,
				`SELECT payload_json FROM mediation_events WHERE kind = 'auth_retry_attempt'`).Scan(&raw))
			var p struct{ Error string }
			require.NoError(t, json.Unmarshal(raw, &p))
			require.Equal(t, s.GetLastError(), p.Error, "the audit row holds the same text")
			require.True(t, utf8.ValidString(p.Error))
		})
	}

	t.Run("take reports", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		in := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: fastTuning("a")})
		_, err := in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
			DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK,
		})
		require.NoError(t, err)
		reason := strings.Repeat("x", 63) + "é"
		resp, err := in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
			DisputeId: strings.Repeat("d", 64) + "é", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO,
			CantDoReason: reason, DisputeStatus: strings.Repeat("s", 31) + "é",
		})
		require.NoError(t, err)
		s := resp.GetState()
		require.Equal(t, stAuthorized, s.GetState(), "an unknown cant-do reason proves nothing")
		_, err = in.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
			DisputeId: strings.Repeat("d", 64) + "é", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY,
		})
		require.NoError(t, err, "a dispute id of 64 characters and é is stored, cut to 64")
		s = in.state(t)
		require.Equal(t, stUnauthorized, s.GetState())
		require.Equal(t, strings.Repeat("d", 64), s.GetEvidence().GetDisputeId())
	})
}

package mediationsvc_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/mediationsvc"
)

type testBundle struct {
	db  *pgdbtest.DB
	svc *mediationsvc.Service
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	db := pgdbtest.NewDB(t)
	svc, err := mediationsvc.New(mediationsvc.Deps{Logger: logging.Discard(), Pool: db.Pool})
	require.NoError(t, err)

	// Two disputes; d-1 has a session and audit events of both scopes.
	_, err = db.Pool.Exec(t.Context(), `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-1', 'e1', 'm', 'buyer', 100, 101), ('d-2', 'e2', 'm', 'seller', 200, 201);
INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ('s-1', 'd-1', 'escalation_recommended', 'phase3-default', 'hash-1', 110, 120),
       ('s-2', 'd-2', 'closed', 'phase3-default', 'hash-1', 210, 220);
INSERT INTO mediation_events (session_id, kind, payload_json, occurred_at) VALUES
  (NULL, 'start_attempt_started', '{"dispute_id":"d-1","trigger":"detected"}', 105),
  ('s-1', 'session_opened', '{}', 110),
  (NULL, 'start_attempt_started', '{"dispute_id":"d-2","trigger":"detected"}', 205),
  ('s-1', 'handoff_prepared', '{"dispute_id":"d-1","trigger":"round_limit"}', 120);`)
	require.NoError(t, err)
	return &testBundle{db: db, svc: svc}
}

func TestListAuditEvents(t *testing.T) {
	t.Parallel()
	b := setup(t)

	resp, err := b.svc.ListAuditEvents(t.Context(), &mediationsvcv1.ListAuditEventsRequest{DisputeId: "d-1"})
	require.NoError(t, err)
	var kinds []string
	for _, e := range resp.GetEvents() {
		kinds = append(kinds, e.GetKind())
	}
	require.Equal(t, []string{"start_attempt_started", "session_opened", "handoff_prepared"}, kinds,
		"both scopes of d-1, oldest first, nothing of d-2")
	require.Empty(t, resp.GetEvents()[0].GetSessionId())
	require.Equal(t, "s-1", resp.GetEvents()[1].GetSessionId())

	_, err = b.svc.ListAuditEvents(t.Context(), &mediationsvcv1.ListAuditEventsRequest{})
	require.Equal(t, apperr.KindInvalidArgument, apperr.KindOf(err))
}

func TestSessions(t *testing.T) {
	t.Parallel()
	b := setup(t)

	got, err := b.svc.GetSession(t.Context(), &mediationsvcv1.GetSessionRequest{SessionId: "s-1"})
	require.NoError(t, err)
	require.Equal(t, "d-1", got.GetSession().GetDisputeId())
	require.Equal(t, "escalation_recommended", got.GetSession().GetState())
	require.Equal(t, int64(110), got.GetSession().GetStartedAt().GetSeconds())

	_, err = b.svc.GetSession(t.Context(), &mediationsvcv1.GetSessionRequest{SessionId: "nope"})
	require.Equal(t, apperr.KindNotFound, apperr.KindOf(err))

	tests := []struct {
		name string
		req  *mediationsvcv1.ListSessionsRequest
		want []string
	}{
		{name: "All", req: &mediationsvcv1.ListSessionsRequest{}, want: []string{"s-2", "s-1"}},
		{name: "ByDispute", req: &mediationsvcv1.ListSessionsRequest{DisputeId: "d-1"}, want: []string{"s-1"}},
		{name: "ByState", req: &mediationsvcv1.ListSessionsRequest{States: []string{"closed"}}, want: []string{"s-2"}},
		{name: "PageSize", req: &mediationsvcv1.ListSessionsRequest{PageSize: 1}, want: []string{"s-2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, err := b.svc.ListSessions(t.Context(), tt.req)
			require.NoError(t, err)
			var ids []string
			for _, s := range resp.GetSessions() {
				ids = append(ids, s.GetSessionId())
			}
			require.Equal(t, tt.want, ids)
		})
	}
}

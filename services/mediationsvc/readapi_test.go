package mediationsvc_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/mediationsvc"
)

const (
	// The party chat plaintext and the rationale text of the fixture: the
	// first is served to the operator, neither is ever logged, and the
	// rationale text is never served.
	partySecret     = "buyer says: the fiat left my account at 10:02"
	rationaleSecret = "the bank receipt of the buyer matches the amount"
	rationaleID     = "1f3870be274f6c49b3e31a0c6728957f1f3870be274f6c49b3e31a0c6728957f"
)

// seedTranscript writes one session of d-t with a transcript whose row
// order differs from its conversation order, two classifications and a
// rationale occurrence.
func seedTranscript(t *testing.T, db *pgdbtest.DB) {
	t.Helper()
	_, err := db.Pool.Exec(t.Context(), `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-t', 'et', 'm', 'buyer', 100, 101);
INSERT INTO mediation_sessions (session_id, dispute_id, state, round_count, prompt_bundle_id, policy_hash, started_at, last_transition_at,
                                assigned_solver, current_classification, current_confidence)
VALUES ('s-t', 'd-t', 'follow_up_pending', 1, 'phase3-default', 'hash-1', 110, 150, 'solver-pk', 'coordination_failure_resolvable', 0.8);
INSERT INTO mediation_messages (session_id, direction, party, shared_pubkey, inner_event_id, inner_event_created_at, content, persisted_at, stale) VALUES
  ('s-t', 'inbound',  'buyer',  'shared-b', 'in-b1',  130, '`+partySecret+`', 131, 0),
  ('s-t', 'outbound', 'buyer',  'shared-b', 'out-b1', 120, 'hello buyer', 120, 0),
  ('s-t', 'outbound', 'seller', 'shared-s', 'out-s1', 120, 'hello seller', 120, 0),
  ('s-t', 'inbound',  'seller', 'shared-s', 'in-s0',  90,  'old message', 135, 1);
INSERT INTO reasoning_rationales (rationale_id, rationale_text, generated_at) VALUES ('`+rationaleID+`', '`+rationaleSecret+`', 112);
INSERT INTO reasoning_rationale_occurrences (rationale_id, dispute_id, session_id, operation, provider, model, prompt_bundle_id, policy_hash, generated_at, occurrence_key)
VALUES ('`+rationaleID+`', 'd-t', 's-t', 'classify', 'openai', 'gpt-x', 'phase3-default', 'hash-1', 112, 'k1');
INSERT INTO mediation_events (session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at) VALUES
  ('s-t', 'session_opened', '{}', NULL, 'phase3-default', 'hash-1', 110),
  ('s-t', 'classification_produced', '{"classification":"coordination_failure_resolvable","confidence":0.8,"rationale_id":"`+rationaleID+`"}', '`+rationaleID+`', 'phase3-default', 'hash-1', 112),
  ('s-t', 'outbound_sent', '{"inner_event_id":"out-b1","shared_pubkey":"shared-b"}', NULL, 'phase3-default', 'hash-1', 120),
  ('s-t', 'classification_produced', '{"classification":"conflicting_claims","confidence":0.55,"rationale_id":"`+rationaleID+`"}', '`+rationaleID+`', 'phase3-default', 'hash-1', 140);`)
	require.NoError(t, err)
}

// serve runs mediationsvc's API on a real gRPC server whose request log
// goes to the returned buffer.
func serve(t *testing.T, db *pgdbtest.DB) (mediationsvcv1.MediationServiceClient, *logtest.Buffer) {
	t.Helper()
	log, logs := logtest.New()
	svc, err := mediationsvc.New(mediationsvc.Deps{Logger: log, Pool: db.Pool})
	require.NoError(t, err)
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second, AuthToken: "tok"})
	require.NoError(t, err)
	svc.Register(srv.GRPC())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Start(lis)
	t.Cleanup(srv.Stop)
	conn, err := grpcclient.Dial(lis.Addr().String(), grpcclient.Options{Token: "tok"})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return mediationsvcv1.NewMediationServiceClient(conn), logs
}

func TestGetSessionTranscriptAndClassifications(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	seedTranscript(t, db)
	client, logs := serve(t, db)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()

	resp, err := client.GetSession(ctx, &mediationsvcv1.GetSessionRequest{SessionId: "s-t"})
	require.NoError(t, err)
	s := resp.GetSession()
	require.Equal(t, "follow_up_pending", s.GetState())
	require.Equal(t, int32(1), s.GetRoundCount())
	require.Equal(t, "solver-pk", s.GetAssignedSolver())
	require.Equal(t, "coordination_failure_resolvable", s.GetCurrentClassification())
	require.InDelta(t, 0.8, s.GetCurrentConfidence(), 1e-9)

	type line struct {
		id, direction, party string
		at                   int64
		stale                bool
	}
	var got []line
	for _, m := range resp.GetTranscript() {
		got = append(got, line{m.GetInnerEventId(), m.GetDirection(), m.GetParty(), m.GetCreatedAt().GetSeconds(), m.GetStale()})
	}
	require.Equal(t, []line{
		{"in-s0", "inbound", "seller", 90, true},
		{"out-b1", "outbound", "buyer", 120, false},
		{"out-s1", "outbound", "seller", 120, false},
		{"in-b1", "inbound", "buyer", 130, false},
	}, got, "by the inner event's created_at, then row id")
	require.Equal(t, partySecret, resp.GetTranscript()[3].GetContent(), "the operator reads what the party wrote")
	require.Equal(t, int64(131), resp.GetTranscript()[3].GetPersistedAt().GetSeconds())

	require.Len(t, resp.GetClassifications(), 2)
	c0, c1 := resp.GetClassifications()[0], resp.GetClassifications()[1]
	require.Equal(t, "coordination_failure_resolvable", c0.GetClassification())
	require.InDelta(t, 0.8, c0.GetConfidence(), 1e-9)
	require.Equal(t, rationaleID, c0.GetRationaleId())
	require.Equal(t, "classification_produced", c0.GetKind())
	require.Equal(t, "conflicting_claims", c1.GetClassification())
	require.Equal(t, int64(140), c1.GetOccurredAt().GetSeconds())

	require.Len(t, resp.GetRationales(), 1)
	require.Equal(t, rationaleID, resp.GetRationales()[0].GetRationaleId())
	require.Equal(t, "classify", resp.GetRationales()[0].GetOperation())
	require.Equal(t, "gpt-x", resp.GetRationales()[0].GetModel())
	require.Len(t, resp.GetEvents(), 4, "the session's audit events")

	b, err := protojson.Marshal(resp)
	require.NoError(t, err)
	require.NotContains(t, string(b), rationaleSecret, "rationale text is never served")
	require.NotEmpty(t, logs.Lines(), "the request was logged")
	for _, secret := range []string{partySecret, rationaleSecret, "hello buyer"} {
		require.False(t, logs.Contains(secret), "never logged: %q\n%s", secret, logs.String())
	}
}

func TestReadAPIErrors(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	seedTranscript(t, db)
	client, _ := serve(t, db)
	ctx := t.Context()
	tests := []struct {
		name string
		call func() error
		want string
	}{
		{"GetSessionWithoutID", func() error {
			_, err := client.GetSession(ctx, &mediationsvcv1.GetSessionRequest{})
			return err
		}, "InvalidArgument"},
		{"UnknownSession", func() error {
			_, err := client.GetSession(ctx, &mediationsvcv1.GetSessionRequest{SessionId: "nope"})
			return err
		}, "NotFound"},
		{"NegativePage", func() error {
			_, err := client.ListSessions(ctx, &mediationsvcv1.ListSessionsRequest{PageSize: -1})
			return err
		}, "InvalidArgument"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			require.Error(t, err)
			require.Contains(t, err.Error(), "code = "+tt.want)
		})
	}

	// A session with no messages, classifications or rationales.
	_, err := db.Pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ('s-empty', 'd-t', 'opening', 'phase3-default', 'hash-1', 200, 200)`)
	require.NoError(t, err)
	resp, err := client.GetSession(ctx, &mediationsvcv1.GetSessionRequest{SessionId: "s-empty"})
	require.NoError(t, err)
	require.Empty(t, resp.GetTranscript())
	require.Empty(t, resp.GetClassifications())
	require.Empty(t, resp.GetRationales())
	require.Nil(t, resp.GetSession().CurrentConfidence, "no classification yet")
	list, err := client.ListSessions(ctx, &mediationsvcv1.ListSessionsRequest{DisputeId: "d-t", States: []string{"opening"}})
	require.NoError(t, err)
	require.Len(t, list.GetSessions(), 1)
	require.Equal(t, "s-empty", list.GetSessions()[0].GetSessionId())
}

package authprobe_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/authprobe"
)

type relaygwStub struct {
	relaygwv1.RelayGatewayServiceClient
	resp *relaygwv1.SendMostroRequestResponse
	err  error
	got  *relaygwv1.SendMostroRequestRequest
}

func (r *relaygwStub) SendMostroRequest(_ context.Context, req *relaygwv1.SendMostroRequestRequest, _ ...grpc.CallOption) (*relaygwv1.SendMostroRequestResponse, error) {
	r.got = req
	return r.resp, r.err
}

type authRecorder struct {
	authsvcv1.AuthServiceClient
	reports []*authsvcv1.ReportTakeOutcomeRequest
}

func (a *authRecorder) ReportTakeOutcome(_ context.Context, req *authsvcv1.ReportTakeOutcomeRequest, _ ...grpc.CallOption) (*authsvcv1.ReportTakeOutcomeResponse, error) {
	a.reports = append(a.reports, req)
	return &authsvcv1.ReportTakeOutcomeResponse{State: &authsvcv1.AuthState{}}, nil
}

func reply(r *relaygwv1.MostroReply) *relaygwv1.SendMostroRequestResponse {
	return &relaygwv1.SendMostroRequestResponse{ProtocolVersion: 2, Reply: r}
}

func TestTakeAndReport(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		resp       *relaygwv1.SendMostroRequestResponse
		err        error
		want       authsvcv1.TakeOutcome
		wantReason string
		noEvidence bool
	}{
		{"took", reply(&relaygwv1.MostroReply{Action: "admin-took-dispute",
			Result: &relaygwv1.MostroReply_TookDispute{TookDispute: &relaygwv1.SolverDisputeInfo{}}}),
			nil, authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, "", false},
		{"cant-do invalid_pubkey", reply(&relaygwv1.MostroReply{Action: "cant-do",
			Result: &relaygwv1.MostroReply_CantDo{CantDo: &relaygwv1.CantDo{Reason: "invalid_pubkey"}}}),
			nil, authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO, "invalid_pubkey", false},
		{"cant-do null", reply(&relaygwv1.MostroReply{Action: "cant-do",
			Result: &relaygwv1.MostroReply_CantDo{CantDo: &relaygwv1.CantDo{}}}),
			nil, authsvcv1.TakeOutcome_TAKE_OUTCOME_CANT_DO, "", false},
		{"no reply", nil, status.Error(codes.DeadlineExceeded, "no reply from the Mostro node within 1s"),
			authsvcv1.TakeOutcome_TAKE_OUTCOME_NO_REPLY, "", false},
		{"no relay accepted the request", nil, status.Error(codes.Unavailable, "no relay accepted the request"), 0, "", true},
		{"relaygw refused", nil, status.Error(codes.InvalidArgument, "id must be a UUID"), 0, "", true},
		{"unexpected reply", reply(&relaygwv1.MostroReply{Action: "admin-settled"}), nil, 0, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rg := &relaygwStub{resp: tc.resp, err: tc.err}
			auth := &authRecorder{}
			c := authprobe.Candidate{DisputeID: "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", Status: "initiated"}
			out, err := authprobe.TakeAndReport(context.Background(), rg, auth, c,
				authprobe.TakeOptions{ProbeID: "p-1", Timeout: time.Second, FirstContact: true})
			require.Equal(t, relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE, rg.got.GetAction())
			require.Equal(t, c.DisputeID, rg.got.GetId())
			require.True(t, rg.got.GetFirstContact())
			require.Equal(t, time.Second, rg.got.GetTimeout().AsDuration())
			if tc.noEvidence {
				require.ErrorIs(t, err, authprobe.ErrNoEvidence)
				require.Empty(t, auth.reports, "nothing about Mostro was learned: nothing reported")
				return
			}
			require.NoError(t, err)
			require.Len(t, auth.reports, 1)
			r := auth.reports[0]
			require.Equal(t, tc.want, r.GetOutcome())
			require.Equal(t, tc.wantReason, r.GetCantDoReason())
			require.Equal(t, "p-1", r.GetProbeId())
			require.Equal(t, "initiated", r.GetDisputeStatus())
			require.Equal(t, c.DisputeID, r.GetDisputeId())
			require.NotNil(t, r.GetObservedAt())
			require.Equal(t, tc.want == authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, out.Took())
		})
	}
}

func cantDo(reason string) *relaygwv1.SendMostroRequestResponse {
	return reply(&relaygwv1.MostroReply{Action: "cant-do",
		Result: &relaygwv1.MostroReply_CantDo{CantDo: &relaygwv1.CantDo{Reason: reason}}})
}

// statusScript answers DisputeStatus from a script, one answer per call
// (the last one repeats).
type statusScript struct {
	mu      sync.Mutex
	answers []string
	err     error
	calls   int
}

func (s *statusScript) status(_ context.Context, id string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.err != nil {
		return "", s.err
	}
	a := s.answers[min(s.calls, len(s.answers))-1]
	return a, nil
}

func (s *statusScript) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// Mostro answers cant-do invalid_pubkey to any solver taking a dispute
// someone else took first: the report carries the dispute's newest status,
// asked again after the settle wait while it still says initiated.
func TestInvalidPubkeyReportsTheNewestDisputeStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		resp       *relaygwv1.SendMostroRequestResponse
		script     *statusScript // nil: no DisputeStatus
		settles    bool          // TakeAndReport waits StatusSettle
		wantStatus string
		wantCalls  int
	}{
		{"already in progress: reported at once", cantDo("invalid_pubkey"),
			&statusScript{answers: []string{"in-progress"}}, false, "in-progress", 1},
		{"in progress by the time the settle wait ends", cantDo("invalid_pubkey"),
			&statusScript{answers: []string{"initiated", "in-progress"}}, true, "in-progress", 2},
		{"still initiated after the settle wait", cantDo("invalid_pubkey"),
			&statusScript{answers: []string{"initiated"}}, true, "initiated", 2},
		{"status unknown to the caller", cantDo("invalid_pubkey"),
			&statusScript{answers: []string{""}}, true, "initiated", 2},
		{"the question fails: what was known", cantDo("invalid_pubkey"),
			&statusScript{err: errors.New("intakesvc unavailable")}, true, "initiated", 2},
		{"no DisputeStatus: the candidate's status", cantDo("invalid_pubkey"), nil, false, "initiated", 0},
		{"another cant-do does not ask", cantDo("not_authorized"),
			&statusScript{answers: []string{"in-progress"}}, false, "initiated", 0},
		{"a take does not ask", reply(&relaygwv1.MostroReply{Action: "admin-took-dispute",
			Result: &relaygwv1.MostroReply_TookDispute{TookDispute: &relaygwv1.SolverDisputeInfo{}}}),
			&statusScript{answers: []string{"in-progress"}}, false, "initiated", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clock := clockwork.NewFakeClock()
			auth := &authRecorder{}
			o := authprobe.TakeOptions{Timeout: time.Second, Clock: clock}
			if tc.script != nil {
				o.DisputeStatus = tc.script.status
			}
			c := authprobe.Candidate{DisputeID: "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", Status: "initiated"}
			type result struct {
				out authprobe.Outcome
				err error
			}
			done := make(chan result, 1)
			go func() {
				out, err := authprobe.TakeAndReport(context.Background(), &relaygwStub{resp: tc.resp}, auth, c, o)
				done <- result{out, err}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if tc.settles {
				require.NoError(t, clock.BlockUntilContext(ctx, 1), "TakeAndReport waits the settle time")
				select {
				case <-done:
					t.Fatal("reported before the settle wait ended")
				default:
				}
				clock.Advance(authprobe.DefaultStatusSettle)
			}
			var r result
			select {
			case r = <-done:
			case <-ctx.Done():
				t.Fatal("TakeAndReport did not return")
			}
			require.NoError(t, r.err)
			require.Len(t, auth.reports, 1)
			require.Equal(t, tc.wantStatus, auth.reports[0].GetDisputeStatus())
			require.Equal(t, tc.wantStatus, r.out.DisputeStatus)
			if tc.script != nil {
				require.Equal(t, tc.wantCalls, tc.script.count())
			}
		})
	}
}

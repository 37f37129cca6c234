package intakesvc_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/services/intakesvc"
)

// The assignment DM names the solver only when Serbero (docs/intake.md#who-took-a-dispute)
// took the dispute itself (mediationsvc reports its take around
// admin-take-dispute); the in-progress event that follows waits for it.
func TestAssignmentNamesSerberoWhenItTookTheDispute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(2)
	s := e.start(e.config(pubkeys(ss)...), func(o *options) {
		o.tuning = intakesvc.Tuning{PollInterval: 50 * time.Millisecond}
	})
	e.mostro.AddSolver(e.serberoPK, fakemostro.PermRead)
	dID := fakemostro.NewUUID() // Mostro dispute ids are UUIDs (take requires one)
	e.open(dID, "buyer")
	e.waitState(dID, "notified")
	for _, sv := range ss {
		sv.WaitFor(1, wait)
	}

	// What mediationsvc does: announce, take through relaygw, report.
	_, err := s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: dID, Stage: intakesvcv1.TakeStage_TAKE_STAGE_INTENT, IntentTtl: durationpb.New(time.Minute)})
	require.NoError(t, err)
	took, err := e.rg.SendMostroRequest(e.ctx, &relaygwv1.SendMostroRequestRequest{
		Action: relaygwv1.MostroAction_MOSTRO_ACTION_ADMIN_TAKE_DISPUTE, Id: dID})
	require.NoError(t, err)
	require.Equal(t, "admin-took-dispute", took.GetReply().GetAction())
	e.waitState(dID, "taken") // the node's in-progress revision arrived
	for _, sv := range ss {
		sv.AssertNoMore(300 * time.Millisecond) // the assignment DM waits for the outcome
	}
	resp, err := s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: dID, Stage: intakesvcv1.TakeStage_TAKE_STAGE_SUCCEEDED})
	require.NoError(t, err)
	require.Equal(t, e.serberoPK, resp.GetDispute().GetAssignedSolver())
	for _, sv := range ss {
		require.Equal(t, assignmentBody(dID, e.serberoPK), sv.WaitFor(2, wait)[1].Body)
	}

	// A failed take releases the held DMs, which say unknown.
	e.open("d-other", "seller")
	e.waitState("d-other", "notified")
	_, err = s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: "d-other", Stage: intakesvcv1.TakeStage_TAKE_STAGE_INTENT})
	require.NoError(t, err)
	e.takeOver("d-other") // somebody else was faster
	e.waitState("d-other", "taken")
	_, err = s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{
		DisputeId: "d-other", Stage: intakesvcv1.TakeStage_TAKE_STAGE_FAILED})
	require.NoError(t, err)
	for _, sv := range ss {
		require.Equal(t, assignmentBody("d-other", "unknown"), sv.WaitFor(4, wait)[3].Body)
	}

	_, err = s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{DisputeId: "nope", Stage: intakesvcv1.TakeStage_TAKE_STAGE_INTENT})
	require.Equal(t, codes.NotFound, status.Code(err))
	_, err = s.api.RecordSerberoTake(e.ctx, &intakesvcv1.RecordSerberoTakeRequest{DisputeId: "d-other"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

func TestReadAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	s := e.start(e.config(ss[0].Pubkey(), "not-a-real-hex-pubkey"), func(o *options) {
		o.tuning = intakesvc.Tuning{GaugeInterval: 50 * time.Millisecond}
	})
	ev := e.open("d-api-1", "buyer")
	e.waitState("d-api-1", "notified")
	ip := e.takeOver("d-api-1")
	e.waitCount(2, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-api-1' AND notif_type = 'assignment'`)
	e.open("d-api-2", "seller")
	e.waitState("d-api-2", "notified")
	// notified needs only the delivered DM; wait for the failed one too.
	e.waitCount(2, `SELECT count(*) FROM notifications WHERE dispute_id = 'd-api-2'`)

	got, err := s.api.GetDispute(e.ctx, &intakesvcv1.GetDisputeRequest{DisputeId: "d-api-1"})
	require.NoError(t, err)
	d := got.GetDispute()
	require.Equal(t, "d-api-1", d.GetDisputeId())
	require.Equal(t, ev.ID, d.GetEventId())
	require.Equal(t, e.mostroPK, d.GetMostroPubkey())
	require.Equal(t, "buyer", d.GetInitiatorRole())
	require.Equal(t, "in-progress", d.GetDisputeStatus())
	require.Equal(t, int64(ev.CreatedAt), d.GetEventTimestamp().GetSeconds())
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_TAKEN, d.GetLifecycleState())
	require.Empty(t, d.GetAssignedSolver())
	require.Equal(t, ip.ID, d.GetNewestEventId())
	require.Equal(t, e.mostro.Dispute("d-api-1").CreatedAt, d.GetOpenedAt().GetSeconds())
	require.Len(t, got.GetTransitions(), 2)
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED, got.GetTransitions()[0].GetToState())
	require.Equal(t, "initial_notification", got.GetTransitions()[0].GetTrigger())
	require.Equal(t, ip.ID, got.GetTransitions()[1].GetTrigger())
	require.Len(t, got.GetNotifications(), 4)
	var types []string
	for _, n := range got.GetNotifications() {
		types = append(types, n.GetNotifType()+"/"+n.GetStatus())
	}
	require.ElementsMatch(t, []string{"initial/sent", "initial/failed", "assignment/sent", "assignment/failed"}, types)

	_, err = s.api.GetDispute(e.ctx, &intakesvcv1.GetDisputeRequest{DisputeId: "missing"})
	require.Equal(t, codes.NotFound, status.Code(err))

	list, err := s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{})
	require.NoError(t, err)
	require.Len(t, list.GetDisputes(), 2)
	list, err = s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{
		States: []intakesvcv1.LifecycleState{intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED}})
	require.NoError(t, err)
	require.Len(t, list.GetDisputes(), 1)
	require.Equal(t, "d-api-2", list.GetDisputes()[0].GetDisputeId())
	page, err := s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{PageSize: 1})
	require.NoError(t, err)
	require.Len(t, page.GetDisputes(), 1)
	require.NotEmpty(t, page.GetNextPageToken())
	page2, err := s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{PageSize: 1, PageToken: page.GetNextPageToken()})
	require.NoError(t, err)
	require.Len(t, page2.GetDisputes(), 1)
	require.Empty(t, page2.GetNextPageToken())
	require.NotEqual(t, page.GetDisputes()[0].GetDisputeId(), page2.GetDisputes()[0].GetDisputeId())
	none, err := s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{DetectedBefore: timestamppb.New(time.Unix(1, 0))})
	require.NoError(t, err)
	require.Empty(t, none.GetDisputes())
	_, err = s.api.ListDisputes(e.ctx, &intakesvcv1.ListDisputesRequest{PageToken: "garbage!"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))

	// Metrics: the per-state gauge and the reference's events.
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(metric(t, s, "serbero_intakesvc_disputes", "state", "taken")) == 1 &&
			testutil.ToFloat64(metric(t, s, "serbero_intakesvc_disputes", "state", "notified")) == 1
	}, wait, 20*time.Millisecond)
	require.Equal(t, 2.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_notifications_sent_total", "notif_type", "initial")))
	require.Equal(t, 2.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_notifications_failed_total", "notif_type", "initial")))
	require.Equal(t, 1.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_assignments_detected_total")))
	require.Equal(t, 1.0, testutil.ToFloat64(metric(t, s, "serbero_intakesvc_state_transitions_total", "from", "notified", "to", "taken")))
}

// WatchDisputes streams every lifecycle change after a cursor, follows new
// ones as they commit, resumes from a cursor, and ends when the process
// stops.
func TestWatchDisputes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	s := e.start(e.config(pubkeys(ss)...))
	e.open("d-w", "buyer")
	e.waitState("d-w", "notified")

	stream, err := s.api.WatchDisputes(e.ctx, &intakesvcv1.WatchDisputesRequest{})
	require.NoError(t, err)
	recv := func() *intakesvcv1.WatchDisputesResponse {
		t.Helper()
		m, err := stream.Recv()
		require.NoError(t, err)
		return m
	}
	first := recv()
	require.Equal(t, intakesvcv1.ChangeKind_CHANGE_KIND_DETECTED, first.GetKind())
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_NEW, first.GetDispute().GetLifecycleState())
	second := recv()
	require.Equal(t, intakesvcv1.ChangeKind_CHANGE_KIND_TRANSITIONED, second.GetKind())
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED, second.GetTransition().GetToState())
	require.Greater(t, second.GetCursor(), first.GetCursor())

	// Live: the take arrives after the stream caught up.
	start := time.Now()
	e.takeOver("d-w")
	third := recv()
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_TAKEN, third.GetDispute().GetLifecycleState())
	require.Less(t, time.Since(start), 2*time.Second, "woken by the change, not by the poll")

	// A consumer that restarts resumes after its last cursor.
	again, err := s.api.WatchDisputes(e.ctx, &intakesvcv1.WatchDisputesRequest{AfterCursor: second.GetCursor()})
	require.NoError(t, err)
	m, err := again.Recv()
	require.NoError(t, err)
	require.Equal(t, third.GetCursor(), m.GetCursor())

	// Stopping ends the streams.
	s.stopping()
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
	_, err = again.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
}

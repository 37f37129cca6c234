package escalationsvc_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/escalationsvc"
)

// solverHex is a valid x-only public key (that of secret key 1).
const solverHex = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

// okRelaygw accepts every DM (a stand-in for relaygw where only the
// service's wiring is under test).
type okRelaygw struct {
	relaygwv1.RelayGatewayServiceClient
	mu    sync.Mutex
	sent  int
	sentC chan struct{}
}

func (r *okRelaygw) SendDirectMessage(context.Context, *relaygwv1.SendDirectMessageRequest, ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error) {
	r.mu.Lock()
	r.sent++
	r.mu.Unlock()
	if r.sentC != nil {
		r.sentC <- struct{}{}
	}
	return &relaygwv1.SendDirectMessageResponse{EventId: "e", Delivered: true}, nil
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type fixture struct {
	db   *pgdbtest.DB
	svc  *escalationsvc.Service
	rg   *okRelaygw
	reg  *prometheus.Registry
	logs *syncBuffer
}

func newFixture(t *testing.T, enabled bool) *fixture {
	t.Helper()
	cfg := config.Default()
	cfg.Escalation.Enabled = enabled
	cfg.Solvers = []config.SolverConfig{{Pubkey: solverHex, Permission: config.PermissionWrite}}
	f := &fixture{db: pgdbtest.NewDB(t), rg: &okRelaygw{sentC: make(chan struct{}, 10)}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	svc, err := escalationsvc.New(escalationsvc.Deps{
		Config: &cfg, Logger: slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Pool: f.db.Pool, Registerer: f.reg, Relaygw: f.rg, Stopping: context.Background(),
		Tuning: escalationsvc.Tuning{PollInterval: 20 * time.Millisecond},
	})
	require.NoError(t, err)
	f.svc = svc
	return f
}

// run runs the service until the returned stop is called; stop fails the
// test unless Run returns within 5 s.
func (f *fixture) run(t *testing.T) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.svc.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				require.NoError(t, err)
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5 s of the stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func (f *fixture) seed(t *testing.T, disputeID string) handoff.Enqueued {
	t.Helper()
	ctx := context.Background()
	_, err := f.db.Pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1, 'notified')`, disputeID)
	require.NoError(t, err)
	var e handoff.Enqueued
	require.NoError(t, pgx.BeginFunc(ctx, f.db.Pool, func(tx pgx.Tx) error {
		e, err = handoff.Enqueue(ctx, tx, handoff.Package{
			DisputeID: disputeID, Trigger: "conflicting_claims", PromptBundleID: "phase3-default", PolicyHash: "hash-1",
		}, handoff.Meta{})
		return err
	}))
	return e
}

func (f *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// B17 #1: enabled with no handoffs, the dispatcher runs cycles and touches
// no table; it stops cleanly within 5 s.
func TestEnabledWithNoHandoffsTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	stop := f.run(t)
	require.Eventually(t, func() bool { return strings.Count(f.logs.String(), "phase4_dispatcher_tick") >= 5 }, 5*time.Second, 10*time.Millisecond,
		"several cycles ran")
	stop()
	for _, table := range []string{"escalation_dispatches", "disputes", "notifications", "dispute_state_transitions",
		"mediation_sessions", "mediation_messages", "mediation_events", "handoffs"} {
		require.Zero(t, f.count(t, table), table)
	}
	logs := f.logs.String()
	require.Contains(t, logs, `"msg":"phase4_dispatcher_enabled"`)
	require.Contains(t, logs, `"write_solver_count":1`)
	require.Contains(t, logs, `"msg":"phase4_dispatcher_loop_started"`)
}

// FR-216: disabled, no dispatcher runs; the admin API still answers.
func TestDisabledDispatchesNothingButAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	e := f.seed(t, "d-1")
	f.run(t)
	require.Eventually(t, func() bool { return strings.Contains(f.logs.String(), `"msg":"phase4_dispatcher_disabled"`) },
		5*time.Second, 10*time.Millisecond, "Run started and logged that the dispatcher is disabled")
	// Several poll intervals pass with nothing dispatched. Polled here, not
	// with require.Never: its condition runs in a goroutine it does not wait
	// for, which could still be querying when the test closes the pool.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); <-tick.C {
		require.Zero(t, f.count(t, "escalation_dispatches"), "a disabled dispatcher dispatches nothing")
	}
	resp, err := f.svc.ListHandoffs(context.Background(), &escalationsvcv1.ListHandoffsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetHandoffs(), 1)
	require.Equal(t, e.ID, resp.GetHandoffs()[0].GetId())
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING, resp.GetHandoffs()[0].GetStatus())
}

func TestDispatchEndToEndAndMetrics(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	f.run(t)
	e := f.seed(t, "d-1")
	select {
	case <-f.rg.sentC:
	case <-time.After(5 * time.Second):
		t.Fatal("no DM sent")
	}
	require.Eventually(t, func() bool { return f.count(t, "escalation_dispatches") == 1 }, 5*time.Second, 10*time.Millisecond)

	got, err := f.svc.GetHandoff(context.Background(), &escalationsvcv1.GetHandoffRequest{Id: e.ID})
	require.NoError(t, err)
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_DONE, got.GetHandoff().GetStatus())
	require.Equal(t, "dispatched", got.GetHandoff().GetOutcome())
	require.Equal(t, e.HandoffEventID, got.GetHandoff().GetHandoffEventId())
	require.Equal(t, "d-1", got.GetHandoff().GetDisputeId())
	require.Equal(t, solverHex, got.GetDispatch().GetTargetSolver())
	require.Equal(t, "dispatched", got.GetDispatch().GetStatus())
	require.NotEmpty(t, got.GetDispatch().GetDispatchId())

	mfs, err := f.reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	require.Equal(t, 1.0, byName["serbero_escalationsvc_handoffs_claimed_total"].GetMetric()[0].GetCounter().GetValue())
	require.Equal(t, 1.0, byName["serbero_escalationsvc_dispatched_total"].GetMetric()[0].GetCounter().GetValue())
	require.Equal(t, uint64(1), byName["serbero_escalationsvc_dispatch_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	depth := map[string]float64{}
	for _, m := range byName["serbero_escalationsvc_queue_depth"].GetMetric() {
		depth[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	require.Equal(t, map[string]float64{"pending": 0, "claimed": 0, "parked": 0, "failed": 0}, depth)
	require.Contains(t, byName, "serbero_escalationsvc_oldest_pending_age_seconds")
	require.Contains(t, f.logs.String(), `"msg":"phase4_dispatched"`)
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, false)
	var ids []int64
	for _, d := range []string{"d-1", "d-2", "d-3"} {
		ids = append(ids, f.seed(t, d).ID)
	}
	// Park d-2 as an escalationsvc replica would.
	claimed, err := handoff.Claim(ctx, f.db.Pool, 2, "replica", time.Minute)
	require.NoError(t, err)
	require.NoError(t, handoff.Park(ctx, f.db.Pool, claimed[1].Lease(), time.Hour, handoff.ParkUnroutable, "no write solver"))

	page, err := f.svc.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: 2})
	require.NoError(t, err)
	require.Len(t, page.GetHandoffs(), 2)
	require.Equal(t, ids[1], page.GetNextAfterId())
	rest, err := f.svc.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: 2, AfterId: page.GetNextAfterId()})
	require.NoError(t, err)
	require.Len(t, rest.GetHandoffs(), 1)
	require.Zero(t, rest.GetNextAfterId(), "last page")

	parked, err := f.svc.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{
		Statuses: []escalationsvcv1.HandoffStatus{escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PARKED},
	})
	require.NoError(t, err)
	require.Len(t, parked.GetHandoffs(), 1)
	p := parked.GetHandoffs()[0]
	require.Equal(t, ids[1], p.GetId())
	require.Equal(t, "unroutable", p.GetParkedReason())
	require.Equal(t, "no write solver", p.GetLastError())
	require.True(t, p.GetNextAttemptAt().AsTime().After(time.Now().Add(50*time.Minute)))

	claimedResp, err := f.svc.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: ids[0]})
	require.NoError(t, err)
	require.Equal(t, "replica", claimedResp.GetHandoff().GetClaimedBy())
	require.NotNil(t, claimedResp.GetHandoff().GetClaimDeadline())
	require.Nil(t, claimedResp.GetDispatch())

	req, err := f.svc.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: ids[1]})
	require.NoError(t, err)
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING, req.GetHandoff().GetStatus())
	require.True(t, req.GetHandoff().GetNextAttemptAt().AsTime().Before(time.Now().Add(time.Minute)))

	for name, tc := range map[string]struct {
		call func() error
		kind apperr.Kind
	}{
		"requeue pending": {func() error {
			_, err := f.svc.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: ids[2]})
			return err
		}, apperr.KindFailedPrecondition},
		"requeue missing": {func() error {
			_, err := f.svc.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: 99999})
			return err
		}, apperr.KindNotFound},
		"get missing": {func() error {
			_, err := f.svc.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: 99999})
			return err
		}, apperr.KindNotFound},
		"get no id": {func() error {
			_, err := f.svc.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{})
			return err
		}, apperr.KindInvalidArgument},
		"negative page": {func() error {
			_, err := f.svc.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: -1})
			return err
		}, apperr.KindInvalidArgument},
		"bad status": {func() error {
			_, err := f.svc.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{Statuses: []escalationsvcv1.HandoffStatus{42}})
			return err
		}, apperr.KindInvalidArgument},
	} {
		err := tc.call()
		require.Error(t, err, name)
		require.Equal(t, tc.kind, apperr.KindOf(err), name)
	}
}

func TestNewRequiresRelaygwWhenEnabled(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	cfg.Escalation.Enabled = true
	db := pgdbtest.NewDB(t)
	_, err := escalationsvc.New(escalationsvc.Deps{Config: &cfg, Logger: slog.New(slog.DiscardHandler), Pool: db.Pool})
	require.ErrorContains(t, err, "relaygw")
}

package escalationsvc_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/logging/logtest"
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

func (r *okRelaygw) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent
}

// intakeStub stands in for intakesvc over real gRPC (pkg/grpcserver's error
// boundary, pkg/grpcclient's dialer): its GetDispute answers from the test
// database's disputes table, which intakesvc owns and the tests seed.
type intakeStub struct {
	intakesvcv1.UnimplementedIntakeServiceServer
	pool *pgxpool.Pool
}

func (s *intakeStub) GetDispute(ctx context.Context, req *intakesvcv1.GetDisputeRequest) (*intakesvcv1.GetDisputeResponse, error) {
	var state string
	var assigned *string
	err := s.pool.QueryRow(ctx, `SELECT lifecycle_state, assigned_solver FROM disputes WHERE dispute_id = $1`, req.GetDisputeId()).Scan(&state, &assigned)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, apperr.NotFound("dispute %q not found", req.GetDisputeId())
	}
	if err != nil {
		return nil, err
	}
	d := &intakesvcv1.Dispute{
		DisputeId:      req.GetDisputeId(),
		LifecycleState: intakesvcv1.LifecycleState(intakesvcv1.LifecycleState_value["LIFECYCLE_STATE_"+strings.ToUpper(state)]),
	}
	if assigned != nil {
		d.AssignedSolver = *assigned
	}
	return &intakesvcv1.GetDisputeResponse{Dispute: d}, nil
}

// intakeServer is a running intakeStub; stop takes it down (the address
// then refuses connections), start brings it back on the same address.
type intakeServer struct {
	t    *testing.T
	pool *pgxpool.Pool
	addr string
	srv  *grpcserver.Server
}

func startIntake(t *testing.T, pool *pgxpool.Pool) *intakeServer {
	t.Helper()
	s := &intakeServer{t: t, pool: pool, addr: "127.0.0.1:0"}
	s.start()
	t.Cleanup(s.stop)
	return s
}

func (s *intakeServer) start() {
	s.t.Helper()
	srv, err := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), Grace: time.Second})
	require.NoError(s.t, err)
	intakesvcv1.RegisterIntakeServiceServer(srv.GRPC(), &intakeStub{pool: s.pool})
	lis, err := net.Listen("tcp", s.addr)
	require.NoError(s.t, err)
	s.addr, s.srv = lis.Addr().String(), srv
	srv.Start(lis)
}

func (s *intakeServer) stop() {
	if s.srv != nil {
		s.srv.Drain()
		s.srv.Stop()
		s.srv = nil
	}
}

// client dials the stub as the runner dials a peer.
func (s *intakeServer) client(t *testing.T) intakesvcv1.IntakeServiceClient {
	conn, err := grpcclient.Dial(s.addr, grpcclient.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return intakesvcv1.NewIntakeServiceClient(conn)
}

type fixture struct {
	db     *pgdbtest.DB
	svc    *escalationsvc.Service
	rg     *okRelaygw
	intake *intakeServer
	reg    *prometheus.Registry
	logs   *logtest.Buffer
}

func testConfig(enabled bool) escalationsvc.Config {
	return escalationsvc.Config{
		Enabled: enabled, DispatchInterval: 20 * time.Millisecond, ClaimTimeout: time.Minute,
		Solvers: []config.SolverConfig{{Pubkey: solverHex, Permission: config.PermissionWrite}},
	}
}

func newFixture(t *testing.T, enabled bool, mod ...func(*escalationsvc.Deps)) *fixture {
	t.Helper()
	f := &fixture{db: pgdbtest.NewDB(t), rg: &okRelaygw{sentC: make(chan struct{}, 10)}, reg: prometheus.NewRegistry()}
	f.intake = startIntake(t, f.db.Pool)
	logger, logs := logtest.New()
	f.logs = logs
	deps := escalationsvc.Deps{
		Config: testConfig(enabled), Logger: logger,
		Pool: f.db.Pool, Registerer: f.reg, Relaygw: f.rg, Intakesvc: f.intake.client(t),
	}
	for _, m := range mod {
		m(&deps)
	}
	svc, err := escalationsvc.New(deps)
	require.NoError(t, err)
	f.svc = svc
	return f
}

// run runs the service until the returned stop is called; stop fails the
// test unless Run returns within 5 s.
func (f *fixture) run(t *testing.T) (stop func()) {
	return runService(t, f.svc)
}

func runService(t *testing.T, svc *escalationsvc.Service) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
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

func seedDispute(t *testing.T, pool *pgxpool.Pool, disputeID string) {
	t.Helper()
	_, err := pool.Exec(context.Background(), `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1, 'notified')`, disputeID)
	require.NoError(t, err)
}

func enqueue(t *testing.T, pool *pgxpool.Pool, disputeID string) handoff.Enqueued {
	t.Helper()
	ctx := context.Background()
	var e handoff.Enqueued
	require.NoError(t, pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var err error
		e, err = handoff.Enqueue(ctx, tx, handoff.Package{
			DisputeID: disputeID, Trigger: "conflicting_claims", PromptBundleID: "phase3-default", PolicyHash: "hash-1",
		}, handoff.Meta{})
		return err
	}))
	return e
}

func (f *fixture) seed(t *testing.T, disputeID string) handoff.Enqueued {
	t.Helper()
	seedDispute(t, f.db.Pool, disputeID)
	return enqueue(t, f.db.Pool, disputeID)
}

func (f *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	require.NoError(t, f.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&n))
	return n
}

// Enabled with no handoffs, the dispatcher runs cycles and touches no
// table; it stops cleanly within 5 s.
func TestEnabledWithNoHandoffsTouchesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t, true)
	stop := f.run(t)
	require.Eventually(t, func() bool { return len(f.logs.Find("phase4_dispatcher_tick")) >= 5 }, 5*time.Second, 10*time.Millisecond,
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

// Disabled, no dispatcher runs; the admin API still answers.
func TestDisabledDispatchesNothingButAnswers(t *testing.T) {
	t.Parallel()
	f := newFixture(t, false)
	e := f.seed(t, "d-1")
	f.run(t)
	require.Eventually(t, func() bool { return f.logs.Contains(`"msg":"phase4_dispatcher_disabled"`) },
		5*time.Second, 10*time.Millisecond, "Run started and logged that the dispatcher is disabled")
	// Several poll intervals pass with nothing dispatched. Polled here, not
	// with require.Never: its condition runs in a goroutine it does not wait
	// for, which could still be querying when the test closes the pool.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); <-tick.C {
		require.Zero(t, f.count(t, "escalation_dispatches"), "a disabled dispatcher dispatches nothing")
	}
	resp, err := f.svc.Server().ListHandoffs(context.Background(), &escalationsvcv1.ListHandoffsRequest{})
	require.NoError(t, err)
	require.Len(t, resp.GetHandoffs(), 1)
	require.Equal(t, e.ID, resp.GetHandoffs()[0].GetId())
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING, resp.GetHandoffs()[0].GetStatus())
}

func gather(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	byName := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	return byName
}

func depthOf(byName map[string]*dto.MetricFamily) map[string]float64 {
	depth := map[string]float64{}
	for _, m := range byName["serbero_escalationsvc_queue_depth"].GetMetric() {
		depth[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
	}
	return depth
}

func gauge(byName map[string]*dto.MetricFamily, name string) float64 {
	ms := byName[name].GetMetric()
	if len(ms) == 0 {
		return -1
	}
	return ms[0].GetGauge().GetValue()
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

	got, err := f.svc.Server().GetHandoff(context.Background(), &escalationsvcv1.GetHandoffRequest{Id: e.ID})
	require.NoError(t, err)
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_DONE, got.GetHandoff().GetStatus())
	require.Equal(t, "dispatched", got.GetHandoff().GetOutcome())
	require.Equal(t, e.HandoffEventID, got.GetHandoff().GetHandoffEventId())
	require.Equal(t, "d-1", got.GetHandoff().GetDisputeId())
	require.Equal(t, solverHex, got.GetDispatch().GetTargetSolver())
	require.Equal(t, "dispatched", got.GetDispatch().GetStatus())
	require.NotEmpty(t, got.GetDispatch().GetDispatchId())

	byName := gather(t, f.reg)
	require.Equal(t, 1.0, byName["serbero_escalationsvc_handoffs_claimed_total"].GetMetric()[0].GetCounter().GetValue())
	require.Equal(t, 1.0, byName["serbero_escalationsvc_dispatched_total"].GetMetric()[0].GetCounter().GetValue())
	require.Equal(t, uint64(1), byName["serbero_escalationsvc_dispatch_latency_seconds"].GetMetric()[0].GetHistogram().GetSampleCount())
	require.Equal(t, map[string]float64{"pending": 0, "claimed": 0, "parked": 0, "failed": 0}, depthOf(byName))
	require.Contains(t, byName, "serbero_escalationsvc_oldest_pending_age_seconds")
	require.Equal(t, 1.0, gauge(byName, "serbero_escalationsvc_queue_reporter"), "the only replica reports")
	require.Contains(t, f.logs.String(), `"msg":"phase4_dispatched"`)
}

// The queue gauges are reported by one replica and 0 by the others, so a
// sum across replicas (what an autoscaler computes) is the queue's true
// size; when the reporter stops, another replica takes the role.
func TestQueueDepthSumsCorrectlyAcrossReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgdbtest.NewDB(t)
	// Two replicas, each with its own pool, as two pods would be.
	type replica struct {
		svc  *escalationsvc.Service
		reg  *prometheus.Registry
		stop func()
	}
	var reps []*replica
	for range 2 {
		pool := db.OpenPool(t)
		reg := prometheus.NewRegistry()
		svc, err := escalationsvc.New(escalationsvc.Deps{
			Config: testConfig(false), Logger: slog.New(slog.DiscardHandler), Pool: pool, Registerer: reg,
		})
		require.NoError(t, err)
		reps = append(reps, &replica{svc: svc, reg: reg, stop: runService(t, svc)})
	}
	// The queue: 3 pending (1 of them failed below), 2 claimed, 1 parked.
	for _, id := range []string{"d-1", "d-2", "d-3", "d-4", "d-5", "d-6"} {
		seedDispute(t, db.Pool, id)
		enqueue(t, db.Pool, id)
	}
	claimed, err := handoff.Claim(ctx, db.Pool, 4, "elsewhere", time.Hour)
	require.NoError(t, err)
	require.NoError(t, handoff.Park(ctx, db.Pool, claimed[2].Lease(), time.Hour, handoff.ParkUnroutable, "no write solver"))
	require.NoError(t, handoff.Fail(ctx, db.Pool, claimed[3].Lease(), "given up"))
	want := map[string]float64{"pending": 2, "claimed": 2, "parked": 1, "failed": 1}

	sums := func(from []*replica) (depth map[string]float64, due, reporters float64) {
		depth = map[string]float64{}
		for _, r := range from {
			byName := gather(t, r.reg)
			for k, v := range depthOf(byName) {
				depth[k] += v
			}
			due += gauge(byName, "serbero_escalationsvc_queue_due")
			reporters += gauge(byName, "serbero_escalationsvc_queue_reporter")
		}
		return depth, due, reporters
	}
	for range 3 { // every scrape, whichever replica is asked first
		depth, due, reporters := sums(reps)
		require.Equal(t, want, depth, "the sum across replicas is the queue")
		require.Equal(t, 2.0, due, "the two pending rows are due")
		require.Equal(t, 1.0, reporters, "exactly one replica reports")
	}
	isReporter := func(r *replica) bool {
		return gauge(gather(t, r.reg), "serbero_escalationsvc_queue_reporter") == 1
	}
	reporter, other := reps[0], reps[1]
	if !isReporter(reporter) {
		reporter, other = other, reporter
	}

	// The reporter's connection dies (a node lost, a network cut): Postgres
	// releases the lock with the session, the other replica takes over, and
	// the dead one reports nothing more (never a doubled sum).
	_, err = db.Pool.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return isReporter(other) }, 10*time.Second, 20*time.Millisecond, "the other replica takes the role")
	for range 3 {
		depth, _, reporters := sums(reps)
		require.Equal(t, want, depth, "still the queue, once")
		require.Equal(t, 1.0, reporters)
	}

	other.stop() // the new reporter's pod goes away cleanly
	require.Eventually(t, func() bool { return isReporter(reporter) }, 10*time.Second, 20*time.Millisecond,
		"the first replica, reconnected, takes the role back once the lock is released")
	depth, _, reporters := sums([]*replica{reporter})
	require.Equal(t, want, depth)
	require.Equal(t, 1.0, reporters)
	_, _, stopped := sums([]*replica{other})
	require.Zero(t, stopped, "a stopped replica no longer reports")
}

// intakesvc down is a transient error: the handoff waits in the queue (not
// an orphan, not routed without the dispute) and goes out once intakesvc is
// back. A dispute intakesvc does not know (NotFound over the wire) is the
// orphan case.
func TestIntakesvcUnavailableIsTransientAndNotFoundIsAnOrphan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, true, func(d *escalationsvc.Deps) {
		d.Tuning.LookupTimeout = 200 * time.Millisecond
		d.Tuning.RetryBackoff = func(int) time.Duration { return 50 * time.Millisecond }
	})
	orphan := enqueue(t, f.db.Pool, "d-orphan")
	f.run(t)
	require.Eventually(t, func() bool {
		h, err := handoff.Get(ctx, f.db.Pool, orphan.ID)
		return err == nil && h.Status == handoff.StatusDone
	}, 10*time.Second, 10*time.Millisecond, "the orphan is consumed")
	h, err := handoff.Get(ctx, f.db.Pool, orphan.ID)
	require.NoError(t, err)
	require.Equal(t, handoff.OutcomeOrphanDisputeReference, h.Outcome)

	f.intake.stop()
	e := f.seed(t, "d-1")
	require.Eventually(t, func() bool {
		h, err := handoff.Get(ctx, f.db.Pool, e.ID)
		return err == nil && h.ConsecutiveErrors >= 2
	}, 20*time.Second, 10*time.Millisecond, "retried while intakesvc is down")
	h, err = handoff.Get(ctx, f.db.Pool, e.ID)
	require.NoError(t, err)
	require.NotEqual(t, handoff.StatusDone, h.Status, "not consumed")
	require.NotEqual(t, handoff.StatusFailed, h.Status, "never failed for an outage")
	require.Contains(t, h.LastError, "dispute lookup failed")
	require.Zero(t, f.rg.count(), "no DM without the dispute's state")
	has, err := audit.HasForHandoff(ctx, f.db.Pool, audit.KindEscalationDispatchParseFailed, e.HandoffEventID)
	require.NoError(t, err)
	require.False(t, has, "intakesvc down is not an orphan")
	require.NotEmpty(t, f.logs.Find("phase4_dispatch: dispute lookup failed (transient DB error); handoff remains unconsumed for the next cycle"))

	f.intake.start() // back on the same address
	require.Eventually(t, func() bool {
		h, err := handoff.Get(ctx, f.db.Pool, e.ID)
		return err == nil && h.Status == handoff.StatusDone
	}, 20*time.Second, 10*time.Millisecond, "dispatched once intakesvc is back")
	h, err = handoff.Get(ctx, f.db.Pool, e.ID)
	require.NoError(t, err)
	require.Equal(t, handoff.OutcomeDispatched, h.Outcome)
	require.Equal(t, 1, f.rg.count())
}

func TestAdminAPI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t, false)
	api := f.svc.Server()
	var ids []int64
	for _, d := range []string{"d-1", "d-2", "d-3"} {
		ids = append(ids, f.seed(t, d).ID)
	}
	// Park d-2 as an escalationsvc replica would.
	claimed, err := handoff.Claim(ctx, f.db.Pool, 2, "replica", time.Minute)
	require.NoError(t, err)
	require.NoError(t, handoff.Park(ctx, f.db.Pool, claimed[1].Lease(), time.Hour, handoff.ParkUnroutable, "no write solver"))

	page, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: 2})
	require.NoError(t, err)
	require.Len(t, page.GetHandoffs(), 2)
	require.Equal(t, ids[1], page.GetNextAfterId())
	rest, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: 2, AfterId: page.GetNextAfterId()})
	require.NoError(t, err)
	require.Len(t, rest.GetHandoffs(), 1)
	require.Zero(t, rest.GetNextAfterId(), "last page")

	parked, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{
		Statuses: []escalationsvcv1.HandoffStatus{escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PARKED},
	})
	require.NoError(t, err)
	require.Len(t, parked.GetHandoffs(), 1)
	p := parked.GetHandoffs()[0]
	require.Equal(t, ids[1], p.GetId())
	require.Equal(t, "unroutable", p.GetParkedReason())
	require.Equal(t, "no write solver", p.GetLastError())
	require.True(t, p.GetNextAttemptAt().AsTime().After(time.Now().Add(50*time.Minute)))
	ofDispute, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{DisputeId: "d-3"})
	require.NoError(t, err)
	require.Len(t, ofDispute.GetHandoffs(), 1, "only d-3's handoff")
	require.Equal(t, ids[2], ofDispute.GetHandoffs()[0].GetId())

	claimedResp, err := api.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: ids[0]})
	require.NoError(t, err)
	require.Equal(t, "replica", claimedResp.GetHandoff().GetClaimedBy())
	require.NotNil(t, claimedResp.GetHandoff().GetClaimDeadline())
	require.Nil(t, claimedResp.GetDispatch())

	req, err := api.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: ids[1]})
	require.NoError(t, err)
	require.Equal(t, escalationsvcv1.HandoffStatus_HANDOFF_STATUS_PENDING, req.GetHandoff().GetStatus())
	require.True(t, req.GetHandoff().GetNextAttemptAt().AsTime().Before(time.Now().Add(time.Minute)))

	for name, tc := range map[string]struct {
		call func() error
		kind apperr.Kind
	}{
		"requeue pending": {func() error {
			_, err := api.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: ids[2]})
			return err
		}, apperr.KindFailedPrecondition},
		"requeue missing": {func() error {
			_, err := api.RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: 99999})
			return err
		}, apperr.KindNotFound},
		"get missing": {func() error {
			_, err := api.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: 99999})
			return err
		}, apperr.KindNotFound},
		"get no id": {func() error {
			_, err := api.GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{})
			return err
		}, apperr.KindInvalidArgument},
		"negative page": {func() error {
			_, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{PageSize: -1})
			return err
		}, apperr.KindInvalidArgument},
		"bad status": {func() error {
			_, err := api.ListHandoffs(ctx, &escalationsvcv1.ListHandoffsRequest{Statuses: []escalationsvcv1.HandoffStatus{42}})
			return err
		}, apperr.KindInvalidArgument},
	} {
		err := tc.call()
		require.Error(t, err, name)
		require.Equal(t, tc.kind, apperr.KindOf(err), name)
	}
}

func TestNewChecksItsDeps(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	log := slog.New(slog.DiscardHandler)
	rg := &okRelaygw{}
	intake := startIntake(t, db.Pool).client(t)
	for name, tc := range map[string]struct {
		deps    escalationsvc.Deps
		wantErr string
	}{
		"enabled without relaygw":   {escalationsvc.Deps{Config: testConfig(true), Logger: log, Pool: db.Pool, Intakesvc: intake}, "relaygw"},
		"enabled without intakesvc": {escalationsvc.Deps{Config: testConfig(true), Logger: log, Pool: db.Pool, Relaygw: rg}, "intakesvc"},
		"no pool":                   {escalationsvc.Deps{Config: testConfig(false), Logger: log}, "Pool"},
		"zero interval": {escalationsvc.Deps{Config: escalationsvc.Config{ClaimTimeout: time.Second}, Logger: log, Pool: db.Pool},
			"dispatch interval must be positive"},
		"bad permission": {escalationsvc.Deps{Config: escalationsvc.Config{DispatchInterval: time.Second, ClaimTimeout: time.Second,
			Solvers: []config.SolverConfig{{Pubkey: solverHex, Permission: "admin"}}}, Logger: log, Pool: db.Pool}, "permission must be read or write"},
	} {
		_, err := escalationsvc.New(tc.deps)
		require.ErrorContains(t, err, tc.wantErr, name)
	}
	_, err := escalationsvc.New(escalationsvc.Deps{Config: testConfig(false), Logger: log, Pool: db.Pool})
	require.NoError(t, err, "disabled, no peer is needed")
}

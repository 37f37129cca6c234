package authsvc_test

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/authsvc"
)

const testToken = "test-service-token"

// wait bounds anything that must happen eventually but whose timing is not
// what the test checks: generous, for a loaded 2-core CI machine.
const wait = 30 * time.Second

// instance is one authsvc replica: its own pool, gRPC server and loop.
type instance struct {
	name    string
	svc     *authsvc.Service
	pool    *pgxpool.Pool
	reg     *prometheus.Registry
	client  authsvcv1.AuthServiceClient
	addr    string
	stopRun context.CancelFunc
	stopSrv context.CancelFunc
	runDone chan struct{}
	srvDone chan struct{}
	once    sync.Once
}

type instanceOpts struct {
	relaygw relaygwv1.RelayGatewayServiceClient
	tuning  authsvc.Tuning
	mutate  func(*authsvc.Config)
	logger  *slog.Logger
}

// fastConfig makes a cycle run in well under a second per attempt (the
// base configuration of every instance; instanceOpts.mutate changes it).
func fastConfig() authsvc.Config {
	return authsvc.Config{
		RetryInitial:     200 * time.Millisecond,
		RetryMaxInterval: 400 * time.Millisecond,
		RetryMaxTotal:    time.Hour,
	}
}

// fastTuning shortens the other timings. The lease TTL is long: a replica
// stalled by a loaded machine must not lose the loop to another in a test
// that does not measure failover (those set their own TTL).
func fastTuning(name string) authsvc.Tuning {
	return authsvc.Tuning{
		LeaseTTL:        10 * time.Second,
		RefreshInterval: time.Second,
		ProbeWait:       2 * time.Second,
		ClaimWait:       5 * time.Second,
		CheckRetry:      100 * time.Millisecond,
		StartupGrace:    -1, // tests that want it set it
		Holder:          name,
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func startInstance(t testing.TB, db *pgdbtest.DB, name string, o instanceOpts) *instance {
	t.Helper()
	cfg := fastConfig()
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	if o.logger == nil {
		o.logger = discardLogger()
	}
	pool, err := pgxpool.New(context.Background(), db.URL)
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	svc, err := authsvc.New(authsvc.Deps{
		Config: cfg, Logger: o.logger.With("replica", name), Pool: pool, Registerer: reg,
		Relaygw: o.relaygw, Tuning: o.tuning,
	})
	require.NoError(t, err)
	gs, err := grpcserver.New(grpcserver.Options{
		AuthToken: testToken, Logger: discardLogger(), Registerer: reg, Grace: 2 * time.Second,
	})
	require.NoError(t, err)
	svc.Register(gs.GRPC())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	in := &instance{name: name, svc: svc, pool: pool, reg: reg, addr: lis.Addr().String(),
		runDone: make(chan struct{}), srvDone: make(chan struct{})}
	srvCtx, stopSrv := context.WithCancel(context.Background())
	runCtx, stopRun := context.WithCancel(context.Background())
	in.stopSrv, in.stopRun = stopSrv, stopRun
	go func() { defer close(in.srvDone); _ = gs.Serve(srvCtx, lis) }()
	go func() { defer close(in.runDone); _ = svc.Run(runCtx) }()

	conn, err := grpcclient.Dial(in.addr, grpcclient.Options{Token: testToken})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	in.client = authsvcv1.NewAuthServiceClient(conn)
	t.Cleanup(in.stop)
	return in
}

// stop is a clean stop: the loop releases its lease.
func (in *instance) stop() {
	in.once.Do(func() {
		in.stopRun()
		<-in.runDone
		in.stopSrv()
		<-in.srvDone
		in.pool.Close()
	})
}

// shutdownServer starts the gRPC server's shutdown (it drains, ends every
// open stream and stops) without waiting for it.
func (in *instance) shutdownServer() { in.stopSrv() }

// crash stops the replica as if the process died: it stops talking to the
// database first, so it cannot release its lease.
func (in *instance) crash() {
	in.once.Do(func() {
		in.pool.Close()
		in.stopRun()
		<-in.runDone
		in.stopSrv()
		<-in.srvDone
	})
}

func (in *instance) state(t testing.TB) *authsvcv1.AuthState {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := in.client.CurrentState(ctx, &authsvcv1.CurrentStateRequest{})
	require.NoError(t, err)
	return resp.GetState()
}

// fakeRelaygw stands in for relaygw in tests that do not need Nostr: the
// node info, and a node that answers takes according to whether Serbero is
// registered.
type fakeRelaygw struct {
	relaygwv1.RelayGatewayServiceClient // unimplemented methods panic

	mu         sync.Mutex
	infoErr    error
	version    int32
	registered bool
	silent     bool
	takes      []string
	infoCalls  int
}

func newFakeRelaygw() *fakeRelaygw { return &fakeRelaygw{version: 2} }

func (f *fakeRelaygw) GetMostroInfo(context.Context, *relaygwv1.GetMostroInfoRequest, ...grpc.CallOption) (*relaygwv1.GetMostroInfoResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.infoCalls++
	if f.infoErr != nil {
		return nil, f.infoErr
	}
	return &relaygwv1.GetMostroInfoResponse{Info: &relaygwv1.MostroInfo{ProtocolVersion: f.version, MostroVersion: "0.18.5"}}, nil
}

func (f *fakeRelaygw) SendMostroRequest(_ context.Context, req *relaygwv1.SendMostroRequestRequest, _ ...grpc.CallOption) (*relaygwv1.SendMostroRequestResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.takes = append(f.takes, req.GetId())
	switch {
	case f.silent:
		return nil, status.Error(codes.DeadlineExceeded, "no reply from the Mostro node within 15s")
	case f.registered:
		return &relaygwv1.SendMostroRequestResponse{ProtocolVersion: f.version, Reply: &relaygwv1.MostroReply{
			Action: "admin-took-dispute", Id: req.GetId(),
			Result: &relaygwv1.MostroReply_TookDispute{TookDispute: &relaygwv1.SolverDisputeInfo{DisputeId: req.GetId()}},
		}}, nil
	default:
		return &relaygwv1.SendMostroRequestResponse{ProtocolVersion: f.version, Reply: &relaygwv1.MostroReply{
			Action: "cant-do", Id: req.GetId(),
			Result: &relaygwv1.MostroReply_CantDo{CantDo: &relaygwv1.CantDo{Reason: "invalid_pubkey"}},
		}}, nil
	}
}

func (f *fakeRelaygw) set(fn func(*fakeRelaygw)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeRelaygw) infoCallCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.infoCalls
}

func (f *fakeRelaygw) takeCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.takes)
}

// auditCount counts auth_* audit rows of a kind.
func auditCount(t testing.TB, db *pgdbtest.DB, kind string) int {
	t.Helper()
	var n int
	require.NoError(t, db.Pool.QueryRow(context.Background(),
		`SELECT count(*) FROM mediation_events WHERE kind = $1 AND session_id IS NULL`, kind).Scan(&n))
	return n
}

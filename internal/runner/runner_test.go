package runner

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/service"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// portFree reports whether nothing listens on addr.
func portFree(t *testing.T, addr string) bool {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func load(t *testing.T, target config.Target, body string) *config.Loaded {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(p, []byte(`
[serbero]
private_key = "0000000000000000000000000000000000000000000000000000000000000001"
[mostro]
pubkey = "0202020202020202020202020202020202020202020202020202020202020202"
`+body), 0o600))
	loaded, err := config.Load(config.LoadOptions{Path: p, Target: target, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	return loaded
}

func TestCompleteWiresEachTargetWithoutBindingPorts(t *testing.T) {
	t.Parallel()
	all := []config.Target{config.TargetAuthsvc, config.TargetEscalationsvc, config.TargetIntakesvc, config.TargetMediationsvc}
	tests := []struct {
		target   config.Target
		services []config.Target
		peers    []Peer
	}{
		{config.TargetAll, config.Services, []Peer{
			{Service: config.TargetRelaygw, Address: "self", InProcess: true, Users: all},
			{Service: config.TargetIntakesvc, Address: "self", InProcess: true, Users: []config.Target{config.TargetEscalationsvc, config.TargetMediationsvc}},
			{Service: config.TargetAuthsvc, Address: "self", InProcess: true, Users: []config.Target{config.TargetMediationsvc}},
		}},
		{config.TargetRelaygw, []config.Target{config.TargetRelaygw}, nil},
		{config.TargetIntakesvc, []config.Target{config.TargetIntakesvc}, []Peer{
			{Service: config.TargetRelaygw, Address: "127.0.0.1:50071", Users: []config.Target{config.TargetIntakesvc}},
		}},
		{config.TargetAuthsvc, []config.Target{config.TargetAuthsvc}, []Peer{
			{Service: config.TargetRelaygw, Address: "127.0.0.1:50071", Users: []config.Target{config.TargetAuthsvc}},
		}},
		{config.TargetMediationsvc, []config.Target{config.TargetMediationsvc}, []Peer{
			{Service: config.TargetRelaygw, Address: "127.0.0.1:50071", Users: []config.Target{config.TargetMediationsvc}},
			{Service: config.TargetIntakesvc, Address: "127.0.0.1:50072", Users: []config.Target{config.TargetMediationsvc}},
			{Service: config.TargetAuthsvc, Address: "127.0.0.1:50073", Users: []config.Target{config.TargetMediationsvc}},
		}},
		{config.TargetEscalationsvc, []config.Target{config.TargetEscalationsvc}, []Peer{
			{Service: config.TargetRelaygw, Address: "127.0.0.1:50071", Users: []config.Target{config.TargetEscalationsvc}},
			{Service: config.TargetIntakesvc, Address: "127.0.0.1:50072", Users: []config.Target{config.TargetEscalationsvc}},
		}},
	}
	for _, tt := range tests {
		t.Run(string(tt.target), func(t *testing.T) {
			t.Parallel()
			grpcAddr, metricsAddr := freeAddr(t), freeAddr(t)
			services := ""
			if tt.target != config.TargetAll {
				services = `[services]
relaygw = "127.0.0.1:50071"
intakesvc = "127.0.0.1:50072"
authsvc = "127.0.0.1:50073"
`
			}
			loaded := load(t, tt.target, fmt.Sprintf(`
[database]
url = "postgres://postgres@127.0.0.1:1/unreachable"
[server]
auth_token = "t0ken"
grpc_listen = %q
metrics_listen = %q
%s`, grpcAddr, metricsAddr, services))
			p, err := Complete(t.Context(), Options{Loaded: loaded, Stderr: &logtest.Buffer{}, Target: tt.target})
			require.NoError(t, err, "no database, no peer and no port is needed to complete")
			plan := p.Plan()
			require.Equal(t, tt.target, plan.Target)
			require.Equal(t, tt.services, plan.Services)
			require.Equal(t, tt.peers, plan.Peers)
			require.Equal(t, grpcAddr, plan.GRPCListen)
			require.Equal(t, metricsAddr, plan.MetricsListen)
			require.True(t, portFree(t, grpcAddr), "the gRPC port is not bound")
			require.True(t, portFree(t, metricsAddr), "the metrics port is not bound")

			require.NoError(t, p.Close())
			require.Empty(t, p.closers.names(), "everything closed")
			_, err = p.pool.Acquire(t.Context())
			require.Error(t, err, "the pool is closed")
		})
	}
}

func TestCompleteRefusesAMissingPeerAddress(t *testing.T) {
	t.Parallel()
	loaded := load(t, config.TargetIntakesvc, `
[database]
url = "postgres://postgres@127.0.0.1:1/unreachable"
[server]
auth_token = "t0ken"
`)
	_, err := Complete(t.Context(), Options{Loaded: loaded, Stderr: &logtest.Buffer{}, Target: config.TargetIntakesvc})
	require.ErrorContains(t, err, "[services].relaygw is required for target intakesvc (SERBERO_SERVICES_RELAYGW")
}

// fakeService is a service the test controls.
type fakeService struct {
	run func(ctx context.Context) error
}

func (fakeService) Register(*grpc.Server)           {}
func (f fakeService) Run(ctx context.Context) error { return f.run(ctx) }

func migratedConfig(t *testing.T, target config.Target, extra string) *config.Loaded {
	t.Helper()
	db := pgdbtest.NewDB(t)
	return load(t, target, fmt.Sprintf(`
[database]
url = %q
[server]
auth_token = "t0ken"
grpc_listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
drain_seconds = 0
shutdown_grace_seconds = 2
%s`, db.URL, extra))
}

func TestAFailingServiceStopsTheProcessAndClosesEverything(t *testing.T) {
	t.Parallel()
	loaded := migratedConfig(t, config.TargetAll, `[services]
relaygw = "127.0.0.1:50071"
`)
	var peerConn *grpc.ClientConn
	otherStopped := make(chan struct{})
	builders := map[config.Target]builder{
		config.TargetRelaygw: func(*env) (service.Service, error) {
			return fakeService{run: func(ctx context.Context) error {
				<-ctx.Done() // stops when the process stops
				close(otherStopped)
				return nil
			}}, nil
		},
		config.TargetIntakesvc: func(e *env) (service.Service, error) {
			c, err := e.peers.conn(config.TargetIntakesvc, config.TargetRelaygw, e.cfg.Services.Relaygw)
			peerConn = c
			return fakeService{run: func(context.Context) error { return errors.New("boom") }}, err
		},
		config.TargetAuthsvc:       func(*env) (service.Service, error) { return idle(), nil },
		config.TargetMediationsvc:  func(*env) (service.Service, error) { return idle(), nil },
		config.TargetEscalationsvc: func(*env) (service.Service, error) { return idle(), nil },
	}
	logs := &logtest.Buffer{}
	p, err := Complete(t.Context(), Options{Loaded: loaded, Stderr: logs, Target: config.TargetAll, builders: builders})
	require.NoError(t, err)
	require.Equal(t, []string{"database pool", "stopping context", "grpc client 127.0.0.1:50071"}, p.closers.names())

	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }() // never cancelled: only the failure stops it
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("a failed service did not stop the process; logs:\n%s", logs)
	}
	require.ErrorContains(t, err, "intakesvc: boom")
	select {
	case <-otherStopped:
	default:
		t.Fatal("the other services' Run did not end")
	}
	require.Empty(t, p.closers.names(), "everything closed")
	require.Equal(t, connectivity.Shutdown, peerConn.GetState(), "peer connections closed")
	_, err = p.pool.Acquire(t.Context())
	require.Error(t, err, "the pool is closed")
	require.Len(t, logs.Find("service failed; stopping"), 1)
	require.Empty(t, logs.Find("stopped cleanly"))
	require.ErrorContains(t, p.Run(context.Background()), "Run called twice")
}

func idle() service.Service {
	return fakeService{run: func(ctx context.Context) error { <-ctx.Done(); return nil }}
}

// TestInProcessPeersReachTheBoundListener: target all on port 0 still
// reaches its own services (the address is known only once Run binds).
func TestInProcessPeersReachTheBoundListener(t *testing.T) {
	t.Parallel()
	loaded := migratedConfig(t, config.TargetAll, "")
	reached := make(chan error, 1)
	builders := map[config.Target]builder{
		config.TargetRelaygw: func(*env) (service.Service, error) { return idle(), nil },
		config.TargetIntakesvc: func(e *env) (service.Service, error) {
			c, err := e.peers.conn(config.TargetIntakesvc, config.TargetRelaygw, "")
			return fakeService{run: func(ctx context.Context) error {
				cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
				defer cancel()
				resp, err := healthpb.NewHealthClient(c).Check(cctx, &healthpb.HealthCheckRequest{})
				if err == nil && resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					err = fmt.Errorf("status %v", resp.GetStatus())
				}
				reached <- err
				<-ctx.Done()
				return nil
			}}, err
		},
		config.TargetAuthsvc:       func(*env) (service.Service, error) { return idle(), nil },
		config.TargetMediationsvc:  func(*env) (service.Service, error) { return idle(), nil },
		config.TargetEscalationsvc: func(*env) (service.Service, error) { return idle(), nil },
	}
	logs := &logtest.Buffer{}
	p, err := Complete(t.Context(), Options{Loaded: loaded, Stderr: logs, Target: config.TargetAll, builders: builders})
	require.NoError(t, err)
	require.Equal(t, []Peer{{Service: config.TargetRelaygw, Address: "self", InProcess: true, Users: []config.Target{config.TargetIntakesvc}}}, p.Plan().Peers)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	select {
	case err := <-reached:
		require.NoError(t, err, "the in-process peer answered")
	case <-time.After(30 * time.Second):
		t.Fatalf("the service never ran; logs:\n%s", logs)
	}
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("no clean stop")
	}
	require.Len(t, logs.Find("stopped cleanly"), 1)
	require.Empty(t, p.closers.names())
}

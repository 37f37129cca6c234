package grpcserver_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
)

const token = "s3cret-token"

// testService misbehaves on demand, chosen by the request's fill_username.
type testService struct {
	testpb.UnimplementedTestServiceServer
	streaming chan struct{} // closed when a stream handler starts
	once      sync.Once
	ended     chan error // what StreamingOutputCall returned
}

func (s *testService) UnaryCall(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	switch {
	case req.GetResponseSize() == 7:
		return nil, apperr.WithReason(apperr.InvalidArgument("recipient is not a public key"), "INVALID_RECIPIENT")
	case req.GetResponseSize() == 8:
		return nil, apperr.WithReason(errors.New("relay pool: no relay connected"), "RELAYS_UNAVAILABLE")
	case req.GetFillUsername() && req.GetFillOauthScope():
		panic("kaboom: secret-panic-detail")
	case req.GetFillUsername():
		return nil, apperr.NotFound("dispute d-1 not found")
	case req.GetFillOauthScope():
		return nil, errors.New(`pq: password authentication failed for user "serbero"`)
	}
	return &testpb.SimpleResponse{Username: "ok"}, nil
}

func (s *testService) StreamingOutputCall(_ *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
	s.once.Do(func() { close(s.streaming) })
	<-stream.Context().Done() // a stream that never ends on its own
	err := stream.Context().Err()
	s.ended <- err
	return err
}

// FullDuplexCall is a handler that ignores its context: it blocks reading
// a client that never sends, until the transport is cut (the hard stop).
func (s *testService) FullDuplexCall(stream testpb.TestService_FullDuplexCallServer) error {
	s.once.Do(func() { close(s.streaming) })
	_, err := stream.Recv()
	return err
}

type bundle struct {
	addr    string
	cancel  context.CancelFunc
	done    chan error
	logs    *logtest.Buffer
	reg     *prometheus.Registry
	service *testService
	ready   *readyFlag
	srv     *grpcserver.Server
}

type readyFlag struct {
	mu  sync.Mutex
	err error
}

func (r *readyFlag) set(err error) { r.mu.Lock(); r.err = err; r.mu.Unlock() }

func (r *readyFlag) check(context.Context) error { r.mu.Lock(); defer r.mu.Unlock(); return r.err }

func setup(t *testing.T, drain, grace time.Duration, readyErr error) *bundle {
	t.Helper()
	log, logs := logtest.NewLevel(slog.LevelInfo)
	b := &bundle{
		logs:    logs,
		reg:     prometheus.NewRegistry(),
		service: &testService{streaming: make(chan struct{}), ended: make(chan error, 1)},
		ready:   &readyFlag{err: readyErr},
		done:    make(chan error, 1),
	}
	srv, err := grpcserver.New(grpcserver.Options{
		AuthToken:  token,
		Drain:      drain,
		Grace:      grace,
		Logger:     log,
		ReadyCheck: b.ready.check,
		Reflection: true,
		Registerer: b.reg,
	})
	require.NoError(t, err)
	testpb.RegisterTestServiceServer(srv.GRPC(), b.service)
	b.srv = srv
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	b.addr = lis.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel = cancel
	go func() { b.done <- srv.Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-b.done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("server did not stop")
		}
	})
	return b
}

func dial(t *testing.T, addr, tok string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpcclient.Dial(addr, grpcclient.Options{Token: tok})
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawDial connects without grpcclient's retry policy, so a client sees the
// status a stream ended with (grpcclient would retry UNAVAILABLE).
func rawDial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(bearerToken(token)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return conn
}

type bearerToken string

func (b bearerToken) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearerToken) RequireTransportSecurity() bool { return false }

func ctxTimeout(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestChain(t *testing.T) {
	t.Parallel()

	t.Run("PanicBecomesInternalWithoutDetail", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, time.Second, nil)
		client := testpb.NewTestServiceClient(dial(t, b.addr, token))

		_, err := client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{FillUsername: true, FillOauthScope: true})
		st := status.Convert(err)
		require.Equal(t, codes.Internal, st.Code())
		require.Equal(t, "internal error", st.Message())
		require.NotContains(t, st.Message(), "kaboom")
		require.Contains(t, b.logs.String(), "secret-panic-detail", "the panic is logged for operators")
		require.Equal(t, 1.0, counterValue(t, b.reg, "serbero_grpc_panics_recovered_total"))

		// The server survives the panic.
		_, err = client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{})
		require.NoError(t, err)
	})

	t.Run("ErrorBoundary", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, time.Second, nil)
		client := testpb.NewTestServiceClient(dial(t, b.addr, token))

		_, err := client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{FillUsername: true})
		require.Equal(t, codes.NotFound, status.Code(err))
		require.Equal(t, "dispute d-1 not found", status.Convert(err).Message())

		_, err = client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{FillOauthScope: true})
		require.Equal(t, codes.Internal, status.Code(err))
		require.Equal(t, "internal error", status.Convert(err).Message(), "driver text never reaches the client")
		require.Contains(t, b.logs.String(), "password authentication failed", "but it is logged")
	})

	t.Run("ReasonTravelsAsErrorInfo", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, time.Second, nil)
		client := testpb.NewTestServiceClient(dial(t, b.addr, token))

		_, err := client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{ResponseSize: 7})
		require.Equal(t, codes.InvalidArgument, status.Code(err))
		require.Equal(t, "recipient is not a public key", status.Convert(err).Message())
		require.Equal(t, "INVALID_RECIPIENT", grpcclient.Reason(err))

		_, err = client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{ResponseSize: 8})
		require.Equal(t, codes.Internal, status.Code(err))
		require.Equal(t, "internal error", status.Convert(err).Message(), "an unclassified cause stays private")
		require.Equal(t, "RELAYS_UNAVAILABLE", grpcclient.Reason(err), "but its reason is public")

		_, err = client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{FillUsername: true})
		require.Empty(t, grpcclient.Reason(err), "no reason, none reported")
	})

	t.Run("AuthRequiredExceptHealth", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, time.Second, nil)

		for name, tok := range map[string]string{"NoToken": "", "WrongToken": "nope"} {
			client := testpb.NewTestServiceClient(dial(t, b.addr, tok))
			_, err := client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{})
			require.Equal(t, codes.Unauthenticated, status.Code(err), name)
		}

		client := testpb.NewTestServiceClient(dial(t, b.addr, token))
		_, err := client.UnaryCall(ctxTimeout(t), &testpb.SimpleRequest{})
		require.NoError(t, err)

		health := healthpb.NewHealthClient(dial(t, b.addr, ""))
		resp, err := health.Check(ctxTimeout(t), &healthpb.HealthCheckRequest{})
		require.NoError(t, err, "health needs no token")
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())

		_, err = testpb.NewTestServiceClient(dial(t, b.addr, "")).EmptyCall(ctxTimeout(t), &testpb.Empty{})
		require.Equal(t, codes.Unauthenticated, status.Code(err), "auth runs before the handler, even an unimplemented one")
	})
}

func TestReadiness(t *testing.T) {
	t.Parallel()

	b := setup(t, 0, time.Second, errors.New("database unreachable"))
	health := healthpb.NewHealthClient(dial(t, b.addr, ""))
	svc := &healthpb.HealthCheckRequest{Service: "grpc.testing.TestService"}

	waitStatus(t, health, &healthpb.HealthCheckRequest{}, healthpb.HealthCheckResponse_SERVING)
	resp, err := health.Check(ctxTimeout(t), svc)
	require.NoError(t, err)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus(), "not ready while the check fails")

	require.Equal(t, 0.0, gaugeValue(t, b.reg, "serbero_ready"), "serbero_ready while the check fails")

	b.ready.set(nil)
	waitStatus(t, health, svc, healthpb.HealthCheckResponse_SERVING)
	// The readiness loop publishes SERVING and then closes Ready(); a client
	// can observe the first before the second has happened, so wait for it.
	select {
	case <-b.srv.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready() not closed after the service became ready")
	}
	require.Equal(t, 1.0, gaugeValue(t, b.reg, "serbero_ready"), "set before Ready() is closed")

	// Not ready again (the database went away), then ready, then drained.
	b.ready.set(errors.New("database unreachable"))
	waitStatus(t, health, svc, healthpb.HealthCheckResponse_NOT_SERVING)
	require.Equal(t, 0.0, gaugeValue(t, b.reg, "serbero_ready"))
	b.ready.set(nil)
	waitStatus(t, health, svc, healthpb.HealthCheckResponse_SERVING)
	require.Equal(t, 1.0, gaugeValue(t, b.reg, "serbero_ready"))
	b.srv.Drain()
	require.Equal(t, 0.0, gaugeValue(t, b.reg, "serbero_ready"), "0 from the drain on")
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestGracefulShutdown(t *testing.T) {
	t.Parallel()

	t.Run("DrainsThenStops", func(t *testing.T) {
		t.Parallel()
		const drain = 300 * time.Millisecond
		b := setup(t, drain, 2*time.Second, nil)
		health := healthpb.NewHealthClient(dial(t, b.addr, ""))
		svc := &healthpb.HealthCheckRequest{Service: "grpc.testing.TestService"}
		waitStatus(t, health, svc, healthpb.HealthCheckResponse_SERVING)

		b.cancel() // SIGTERM
		// During the drain the server still answers, and says NOT_SERVING.
		waitStatus(t, health, svc, healthpb.HealthCheckResponse_NOT_SERVING)
		select {
		case err := <-b.done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("server did not stop within drain + grace")
		}
		b.done <- nil // for cleanup
	})

	t.Run("StreamsEndAtShutdownThroughTheirContext", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, 30*time.Second, nil)
		client := testpb.NewTestServiceClient(rawDial(t, b.addr))
		stream, err := client.StreamingOutputCall(ctxTimeout(t), &testpb.StreamingOutputCallRequest{})
		require.NoError(t, err)
		select {
		case <-b.service.streaming:
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not start")
		}

		b.cancel()
		select {
		case err := <-b.service.ended:
			require.ErrorIs(t, err, context.Canceled, "the handler saw its stream context end")
		case <-time.After(10 * time.Second):
			t.Fatal("the stream handler's context was not cancelled at shutdown")
		}
		_, err = stream.Recv()
		require.Equal(t, codes.Unavailable, status.Code(err), "the client is told to reconnect: %v", err)
		select {
		case err := <-b.done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Fatal("server did not stop")
		}
		b.done <- nil
		require.Contains(t, b.logs.String(), "stopped gracefully", "long before the 30 s grace period")
	})

	t.Run("HardStopAfterGrace", func(t *testing.T) {
		t.Parallel()
		b := setup(t, 0, 200*time.Millisecond, nil)
		client := testpb.NewTestServiceClient(dial(t, b.addr, token))
		_, err := client.FullDuplexCall(ctxTimeout(t))
		require.NoError(t, err)
		select {
		case <-b.service.streaming:
		case <-time.After(10 * time.Second):
			t.Fatal("stream did not start")
		}

		b.cancel()
		select {
		case err := <-b.done:
			require.NoError(t, err, "a stream that ignores its context is cut after the grace period")
		case <-time.After(10 * time.Second):
			t.Fatal("server did not stop")
		}
		b.done <- nil
		require.Contains(t, b.logs.String(), "grace period over, stopping hard")
	})
}

// TestStepwiseShutdown: a caller that owns the order runs Start, Drain and
// Stop itself; Stop ends streams opened even after Drain.
func TestStepwiseShutdown(t *testing.T) {
	t.Parallel()
	log, logs := logtest.New()
	svc := &testService{streaming: make(chan struct{}), ended: make(chan error, 1)}
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Drain: 0, Grace: 30 * time.Second})
	require.NoError(t, err)
	testpb.RegisterTestServiceServer(srv.GRPC(), svc)
	srv.Stop() // before Start: a no-op
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	failed := srv.Start(lis)
	conn := dial(t, lis.Addr().String(), "")
	health := healthpb.NewHealthClient(conn)
	waitStatus(t, health, &healthpb.HealthCheckRequest{}, healthpb.HealthCheckResponse_SERVING)

	srv.Drain()
	resp, err := health.Check(ctxTimeout(t), &healthpb.HealthCheckRequest{})
	require.NoError(t, err, "still answering after the drain")
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, resp.GetStatus())

	stream, err := testpb.NewTestServiceClient(rawDial(t, lis.Addr().String())).StreamingOutputCall(ctxTimeout(t), &testpb.StreamingOutputCallRequest{})
	require.NoError(t, err)
	select {
	case <-svc.streaming:
	case <-time.After(10 * time.Second):
		t.Fatal("stream did not start")
	}
	srv.Stop()
	srv.Stop() // idempotent
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))
	require.Contains(t, logs.String(), "stopped gracefully")
	select {
	case err := <-failed:
		t.Fatalf("a clean stop is not a failure: %v", err)
	default:
	}
}

func waitStatus(t *testing.T, c healthpb.HealthClient, req *healthpb.HealthCheckRequest, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := c.Check(ctxTimeout(t), req)
		return err == nil && resp.GetStatus() == want
	}, 10*time.Second, 20*time.Millisecond, "health %q never became %v", req.GetService(), want)
}

func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

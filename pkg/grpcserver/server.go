// Package grpcserver builds the gRPC server every Serbero service runs: one
// named interceptor chain, standard health, reflection, keepalive, and a
// drain-then-stop shutdown.
//
// The chain, outermost first:
//
//	metrics  -> grpcprom: every call, including auth failures and panics
//	logging  -> slog, one line per finished call (health checks excluded;
//	            successful calls at debug), built only when it is written
//	recovery -> a panic becomes codes.Internal "internal error"; the panic
//	            text and stack go to the log, never to the client
//	auth     -> shared bearer token; health and reflection exempt
//	errors   -> the error boundary: apperr kinds become status codes once,
//	            anything unclassified becomes codes.Internal with a generic
//	            message (driver text never leaks)
//	streams  -> (streams only) the handler's stream.Context() is also
//	            cancelled when shutdown ends the streams; a handler that
//	            returns because of it ends the call with UNAVAILABLE, so
//	            the client reconnects (to another replica)
//
// Health: the overall service "" is SERVING while the process runs (it backs
// liveness). Each registered service name starts NOT_SERVING and turns
// SERVING only when the readiness check passes (Postgres reachable and the
// schema at the version this binary expects); it backs readiness.
//
// Shutdown, in order (docs/architecture.md#startup-and-shutdown): Drain
// turns every status NOT_SERVING and keeps answering for the drain period;
// Stop then ends every open stream (their contexts are cancelled, so
// handlers need nothing but stream.Context()) and stops gracefully within
// the grace period, then hard. Serve runs the whole sequence when its
// context ends; a caller that owns the order (internal/runner) calls
// Start, Drain and Stop itself.
package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// Options configures a Server.
type Options struct {
	// BeforeStop, if set, is called by Serve after the drain period,
	// before the streams end and the graceful stop. Deprecated: streams
	// now end through the server (Stop); tests that still stop their
	// services' background work here move to their own cancel in wave 2.
	BeforeStop func()
	// AuthToken is the shared service-to-service token. Empty disables the
	// auth interceptor (tests only; serve refuses to start without one).
	AuthToken string
	// Drain is how long the server answers while NOT_SERVING before it
	// stops.
	Drain time.Duration
	// Grace bounds the graceful stop; after it the server stops hard.
	Grace time.Duration
	// Logger receives request logs and lifecycle messages.
	Logger *slog.Logger
	// ReadyCheck reports whether the process's dependencies are ready. nil
	// means always ready.
	ReadyCheck func(context.Context) error
	// Reflection registers gRPC reflection.
	Reflection bool
	// Registerer receives the gRPC metrics; nil means none.
	Registerer prometheus.Registerer
}

// Server is a gRPC server with Serbero's standard chain and health.
type Server struct {
	grpc    *grpc.Server
	health  *health.Server
	log     *slog.Logger
	opts    Options
	panics  prometheus.Counter
	readyG  prometheus.Gauge // serbero_ready
	ready   chan struct{}
	metrics *grpcprom.ServerMetrics

	// streams is cancelled when shutdown ends the open streams.
	streams    context.Context
	endStreams context.CancelFunc

	started    chan struct{} // closed by Start
	serveErr   chan error    // grpc.Serve's result
	stopChecks context.CancelFunc
	checksDone chan struct{}
	drainOnce  sync.Once
	stopOnce   sync.Once
}

// New builds a server. Register services on GRPC(), then call Serve.
func New(opts Options) (*Server, error) {
	if opts.Logger == nil {
		return nil, errors.New("grpcserver: Logger is required")
	}
	s := &Server{
		health: health.NewServer(),
		log:    opts.Logger,
		opts:   opts,
		ready:  make(chan struct{}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serbero_grpc_panics_recovered_total",
			Help: "Panics recovered in gRPC handlers.",
		}),
		readyG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serbero_ready",
			Help: "1 while the process's gRPC services answer SERVING on readiness (Postgres reachable, schema current); 0 before, while the check fails, and from the drain on.",
		}),
		metrics: grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram()),
		started: make(chan struct{}),
	}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{s.panics, s.readyG, s.metrics} {
			if err := opts.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("register grpc metrics: %w", err)
			}
		}
	}

	notHealthOrReflection := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !isHealth(c.FullMethod()) && !isReflection(c.FullMethod())
	})
	notHealth := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return !isHealth(c.FullMethod())
	})
	calls := callLog{log: s.log}
	recoveryOpt := recovery.WithRecoveryHandlerContext(s.recovered)

	unary := []grpc.UnaryServerInterceptor{
		s.metrics.UnaryServerInterceptor(),
		selector.UnaryServerInterceptor(interceptors.UnaryServerInterceptor(calls), notHealth),
		recovery.UnaryServerInterceptor(recoveryOpt),
	}
	stream := []grpc.StreamServerInterceptor{
		s.metrics.StreamServerInterceptor(),
		selector.StreamServerInterceptor(interceptors.StreamServerInterceptor(calls), notHealth),
		recovery.StreamServerInterceptor(recoveryOpt),
	}
	if opts.AuthToken != "" {
		check := tokenAuth(opts.AuthToken)
		unary = append(unary, selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(check), notHealthOrReflection))
		stream = append(stream, selector.StreamServerInterceptor(auth.StreamServerInterceptor(check), notHealthOrReflection))
	}
	unary = append(unary, s.unaryErrorBoundary)
	stream = append(stream, s.streamErrorBoundary, s.streamShutdown)

	s.grpc = grpc.NewServer(
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     5 * time.Minute,
			MaxConnectionAge:      30 * time.Minute, // rebalance long-lived clients across replicas
			MaxConnectionAgeGrace: 30 * time.Second,
			Time:                  30 * time.Second,
			Timeout:               10 * time.Second,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	if opts.Reflection {
		reflection.Register(s.grpc)
	}
	return s, nil
}

// GRPC returns the underlying server, for registering services.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// SetHealth sets the standard health status of name, a component status
// beside the services' readiness (for example
// "serbero.mediationsvc.reasoning"). The readiness loop never touches such
// names; shutdown turns them NOT_SERVING with everything else.
func (s *Server) SetHealth(name string, serving bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if serving {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus(name, st)
}

// Ready is closed once the readiness check has passed for the first time.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Serve serves on lis until ctx is cancelled, then runs the shutdown
// sequence (Drain, BeforeStop if set, Stop). It returns nil after a clean
// shutdown.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	errc := s.Start(lis)
	select {
	case err := <-errc:
		s.stopReadiness()
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}
	s.Drain()
	if s.opts.BeforeStop != nil {
		s.opts.BeforeStop()
	}
	s.Stop()
	return nil
}

// Start serves on lis in the background, with the readiness loop, and
// returns a channel that receives grpc's error if serving fails before
// Stop (it receives nothing after a clean Stop). Call it once.
func (s *Server) Start(lis net.Listener) <-chan error {
	s.metrics.InitializeMetrics(s.grpc)
	services := s.serviceNames()
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range services {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
	}

	checkCtx, stopChecks := context.WithCancel(context.Background())
	s.stopChecks, s.checksDone = stopChecks, make(chan struct{})
	go func() {
		defer close(s.checksDone)
		s.checkReadiness(checkCtx, services)
	}()

	s.serveErr = make(chan error, 1)
	failed := make(chan error, 1)
	go func() {
		err := s.grpc.Serve(lis)
		s.serveErr <- err
		if err != nil {
			failed <- err
		}
	}()
	close(s.started)
	s.log.Info("grpc server listening", "addr", lis.Addr().String(), "services", services)
	return failed
}

// stopReadiness ends the readiness loop and waits for it.
func (s *Server) stopReadiness() {
	if s.stopChecks != nil {
		s.stopChecks()
		<-s.checksDone
	}
}

// Drain begins the shutdown: readiness fails (every status NOT_SERVING) so
// load balancers stop sending new work, and calls are still served for
// the drain period, which Drain waits out. Safe to call more than once.
func (s *Server) Drain() {
	s.drainOnce.Do(func() {
		s.stopReadiness()
		s.readyG.Set(0)
		s.health.Shutdown()
		s.log.Info("shutdown: draining", "drain", s.opts.Drain.String())
		if s.opts.Drain > 0 {
			t := time.NewTimer(s.opts.Drain)
			<-t.C
		}
	})
}

// EndStreams cancels the context of every open stream (and of any stream
// that opens later). Stop calls it; it is exported for a caller that ends
// streams earlier in its own sequence.
func (s *Server) EndStreams() { s.endStreams() }

// Stop ends every open stream, then stops gracefully within the grace
// period, then hard, and waits until the server has stopped. It drains
// first if Drain was not called. Safe to call more than once; a no-op
// before Start.
func (s *Server) Stop() {
	select {
	case <-s.started:
	default:
		s.endStreams()
		return
	}
	s.Drain()
	s.stopOnce.Do(func() {
		s.endStreams()
		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		grace := time.NewTimer(s.opts.Grace)
		defer grace.Stop()
		select {
		case <-stopped:
			s.log.Info("shutdown: grpc server stopped gracefully")
		case <-grace.C:
			s.log.Warn("shutdown: grace period over, stopping hard", "grace", s.opts.Grace.String())
			s.grpc.Stop()
			<-stopped
		}
		if err := <-s.serveErr; err != nil {
			s.log.Warn("shutdown: grpc serve ended with an error", "error", err)
		}
	})
}

// checkReadiness flips the service statuses as the readiness check passes
// or fails: every second until ready, every five seconds after.
func (s *Server) checkReadiness(ctx context.Context, services []string) {
	ready := false
	everReady := false
	for {
		err := error(nil)
		if s.opts.ReadyCheck != nil {
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err = s.opts.ReadyCheck(cctx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && !ready:
			s.readyG.Set(1) // before the health status a client sees
			for _, name := range services {
				s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
			}
			s.log.Info("ready: serving", "services", services)
			ready = true
			if !everReady {
				everReady = true
				close(s.ready)
			}
		case err != nil && ready:
			s.readyG.Set(0)
			for _, name := range services {
				s.health.SetServingStatus(name, healthpb.HealthCheckResponse_NOT_SERVING)
			}
			s.log.Error("not ready", "error", err)
			ready = false
		case err != nil:
			s.log.Warn("not ready yet", "error", err)
		}
		wait := time.Second
		if ready {
			wait = 5 * time.Second
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (s *Server) serviceNames() []string {
	var names []string
	for name := range s.grpc.GetServiceInfo() {
		if name == healthpb.Health_ServiceDesc.ServiceName || isReflection("/"+name+"/") {
			continue
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (s *Server) recovered(ctx context.Context, p any) error {
	s.panics.Inc()
	s.log.ErrorContext(ctx, "grpc handler panicked", "panic", fmt.Sprint(p), "stack", string(stack()))
	return errInternal
}

func isHealth(method string) bool { return strings.HasPrefix(method, "/grpc.health.v1.Health/") }

func isReflection(method string) bool { return strings.HasPrefix(method, "/grpc.reflection.") }

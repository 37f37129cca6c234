// Package runner assembles and runs the services of one `serbero serve`
// target in two steps (docs/architecture.md#startup-and-shutdown):
//
//   - Complete builds and checks everything without binding a port or
//     connecting anywhere: configuration mapping, logger, metrics registry,
//     Postgres pool (lazy), gRPC server, peer clients (lazy) and the
//     services. Its result says which services, peers and addresses the
//     process will use (Plan), so a test can assert a target's wiring.
//   - Run binds the ports, serves, starts the services' background work
//     once the process is ready, and on the way out runs the one shutdown
//     sequence (Process.shutdown) and closes every resource through one
//     closer stack, newest first.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/gctune"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/metrics"
	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/service"
)

// Options says what to run.
type Options struct {
	// Dev enables the development conveniences (embedded relay).
	Dev bool
	// Loaded is the loaded configuration.
	Loaded *config.Loaded
	// Stderr receives the logs.
	Stderr io.Writer
	// Target is the service (or all).
	Target config.Target
	// Version is the build version, for the start-up log.
	Version string

	// builders replaces the service constructors (tests of this package).
	builders map[config.Target]builder
}

// builder constructs one service from the process's environment.
type builder func(e *env) (service.Service, error)

// defaultBuilders are the constructors of internal/runner/<svc>.go.
func defaultBuilders() map[config.Target]builder {
	return map[config.Target]builder{
		config.TargetRelaygw:       (*env).relaygw,
		config.TargetIntakesvc:     (*env).intakesvc,
		config.TargetAuthsvc:       (*env).authsvc,
		config.TargetMediationsvc:  (*env).mediationsvc,
		config.TargetEscalationsvc: (*env).escalationsvc,
	}
}

// env is everything a service constructor may use.
type env struct {
	cfg    *config.Config
	dev    bool
	loaded *config.Loaded
	log    *slog.Logger
	peers  *peers
	pool   *pgxpool.Pool
	// setHealth sets a component's gRPC health status.
	setHealth func(name string, serving bool)
	reg       prometheus.Registerer
	stopping  context.Context // cancelled by the shutdown sequence (legacy Deps.Stopping)
	target    config.Target
}

// logger returns the logger of one service.
func (e *env) logger(t config.Target) *slog.Logger { return e.log.With("service", string(t)) }

// Plan is what a completed process will run, for logs and tests.
type Plan struct {
	// Target is the --target value.
	Target config.Target
	// Services are the services built, in start order.
	Services []config.Target
	// GRPCListen is the gRPC address Run binds.
	GRPCListen string
	// MetricsListen is the /metrics address Run binds ("" = none).
	MetricsListen string
	// Peers are the services called over gRPC, and by whom.
	Peers []Peer
}

// Process is a completed target, ready to Run.
type Process struct {
	plan     Plan
	cfg      *config.Config
	log      *slog.Logger
	reg      *prometheus.Registry
	pool     *pgxpool.Pool
	srv      *grpcserver.Server
	peers    *peers
	services []namedService
	closers  *closers
	stopping context.Context
	stopAll  context.CancelFunc
	runOnce  sync.Once
}

type namedService struct {
	name config.Target
	svc  service.Service
}

// Run completes and runs the target until ctx is cancelled, then shuts
// down in order.
func Run(ctx context.Context, opts Options) error {
	p, err := Complete(ctx, opts)
	if err != nil {
		return err
	}
	return p.Run(ctx)
}

// Complete builds everything the target needs without binding a port or
// opening a connection. On error, whatever it built is closed.
func Complete(ctx context.Context, opts Options) (_ *Process, err error) {
	cfg := opts.Loaded.Config
	level, err := logging.ParseLevel(cfg.Serbero.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("configuration error: [serbero].log_level: %w", err)
	}
	log := logging.New(opts.Stderr, cfg.Server.LogFormat, level).With("target", string(opts.Target))
	memLimit := gctune.Tune(os.Getenv)
	for _, w := range opts.Loaded.Warnings {
		log.Warn("config warning: " + w)
	}
	log.Info("starting serbero",
		"version", opts.Version, "config", opts.Loaded.Path, "gogc", gctune.Effective(os.Getenv), "memory_limit_bytes", memLimit, "mostro_pubkey", cfg.Mostro.Pubkey,
		"relays", len(cfg.Relays), "solvers", len(cfg.Solvers),
		"renotification_seconds", cfg.Timeouts.RenotificationSeconds,
		"renotification_check_interval_seconds", cfg.Timeouts.RenotificationCheckIntervalSeconds)
	for i, r := range cfg.Relays {
		log.Info("configured relay", "index", i, "url", r.URL)
	}
	for i, s := range cfg.Solvers {
		log.Info("configured solver", "index", i, "pubkey", s.Pubkey, "permission", string(s.Permission))
	}

	token := cfg.Server.AuthToken.Reveal()
	if token == "" {
		if opts.Target != config.TargetAll {
			return nil, errors.New("configuration error: [server].auth_token is required for a single-service target (SERBERO_AUTH_TOKEN or SERBERO_AUTH_TOKEN_FILE); only --target=all generates one")
		}
		token = randomToken()
		log.Info("generated an in-process service token (target all)")
	}

	cl := &closers{}
	defer func() {
		if err != nil {
			_ = cl.closeAll()
		}
	}()

	pool, err := pgdb.Open(ctx, cfg.Database.URL.Reveal(), cfg.Database.MaxConns)
	if err != nil {
		return nil, err
	}
	cl.push("database pool", func() error { pool.Close(); return nil })

	reg := metrics.NewRegistry()
	if err := metrics.RegisterBuildInfo(reg, opts.Version); err != nil {
		return nil, err
	}
	if err := reg.Register(pgdb.NewPoolCollector(pool, string(opts.Target))); err != nil {
		return nil, fmt.Errorf("register pool metrics: %w", err)
	}
	srv, err := grpcserver.New(grpcserver.Options{
		AuthToken:  token,
		Drain:      cfg.Server.Drain(),
		Grace:      cfg.Server.ShutdownGrace(),
		Logger:     log.With("component", "grpc"),
		ReadyCheck: pgdb.ReadyCheck(pool),
		Reflection: cfg.Server.Reflection,
		Registerer: reg,
	})
	if err != nil {
		return nil, err
	}
	stopping, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	cl.push("stopping context", func() error { stopAll(); return nil })

	e := &env{
		cfg: cfg, dev: opts.Dev, loaded: opts.Loaded, log: log, pool: pool, reg: reg, setHealth: srv.SetHealth, stopping: stopping,
		target: opts.Target, peers: newPeers(opts.Target, token, cl),
	}
	builders := opts.builders
	if builders == nil {
		builders = defaultBuilders()
	}
	p := &Process{
		cfg: cfg, log: log, reg: reg, pool: pool, srv: srv, peers: e.peers, closers: cl,
		stopping: stopping, stopAll: stopAll,
		plan: Plan{Target: opts.Target, GRPCListen: cfg.Server.GRPCListen, MetricsListen: cfg.Server.MetricsListen},
	}
	for _, t := range config.Services {
		if !opts.Target.Includes(t) {
			continue
		}
		b, ok := builders[t]
		if !ok {
			return nil, fmt.Errorf("build %s: no constructor", t)
		}
		svc, err := b(e)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", t, err)
		}
		svc.Register(srv.GRPC())
		p.services = append(p.services, namedService{name: t, svc: svc})
		p.plan.Services = append(p.plan.Services, t)
	}
	p.plan.Peers = e.peers.list()
	return p, nil
}

// Plan returns what the process runs.
func (p *Process) Plan() Plan { return p.plan }

// Close releases everything Complete built, for a process that is never
// Run. Run closes on its own.
func (p *Process) Close() error { return p.closers.closeAll() }

// Run binds the ports and runs until ctx is cancelled, a service fails or
// serving fails; then it shuts down in order and closes everything. It
// returns nil after a clean stop. It may be called once.
func (p *Process) Run(ctx context.Context) (err error) {
	ran := false
	p.runOnce.Do(func() { ran = true })
	if !ran {
		return errors.New("runner: Run called twice")
	}
	defer func() {
		if cerr := p.closers.closeAll(); cerr != nil {
			p.log.Error("shutdown: closing resources", "error", cerr)
			if err == nil {
				err = cerr
			}
		}
		if err == nil {
			p.log.Info("stopped cleanly")
		}
	}()

	lis, err := net.Listen("tcp", p.plan.GRPCListen)
	if err != nil {
		return fmt.Errorf("listen grpc %s: %w", p.plan.GRPCListen, err)
	}
	p.closers.push("grpc listener", lis.Close)
	var metricsLis net.Listener
	if p.plan.MetricsListen != "" {
		if metricsLis, err = net.Listen("tcp", p.plan.MetricsListen); err != nil {
			return fmt.Errorf("listen metrics %s: %w", p.plan.MetricsListen, err)
		}
		p.closers.push("metrics listener", metricsLis.Close)
	}
	p.peers.bind(dialable(lis.Addr().String()))

	serveFailed := p.srv.Start(lis)
	metricsCtx, stopMetrics := context.WithCancel(context.WithoutCancel(ctx))
	metricsDone := make(chan error, 1)
	if metricsLis != nil {
		go func() {
			metricsDone <- metrics.Serve(metricsCtx, metricsLis, p.reg, p.log.With("component", "metrics"))
		}()
	} else {
		metricsDone <- nil
	}

	failed := make(chan error, len(p.services))
	servicesDone := make(chan struct{})
	go func() {
		defer close(servicesDone)
		select {
		case <-p.srv.Ready():
		case <-p.stopping.Done():
			return
		}
		var wg sync.WaitGroup
		for _, s := range p.services {
			wg.Go(func() {
				if err := s.svc.Run(p.stopping); err != nil {
					failed <- fmt.Errorf("%s: %w", s.name, err)
				}
			})
		}
		wg.Wait()
	}()

	var cause error
	select {
	case <-ctx.Done():
	case cause = <-failed: // one failed service stops the process
		p.log.Error("service failed; stopping", "error", cause)
	case cause = <-serveFailed:
		cause = fmt.Errorf("grpc serve: %w", cause)
	}
	p.shutdown(stopMetrics)
	<-servicesDone
	if mErr := <-metricsDone; mErr != nil && cause == nil {
		cause = mErr
	}
	for len(failed) > 0 && cause == nil {
		cause = <-failed
	}
	return cause
}

// shutdown is the one shutdown sequence (docs/architecture.md#shutdown):
// readiness fails and calls are still served for the drain period; then
// background work stops and every open stream ends; then the gRPC server
// stops gracefully within the grace period (hard after it); then /metrics
// stops. Resources close after it, newest first (Run's closer stack).
func (p *Process) shutdown(stopMetrics context.CancelFunc) {
	p.srv.Drain()
	p.stopAll()
	p.srv.Stop()
	stopMetrics()
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

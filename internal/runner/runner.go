// Package runner assembles and runs the services of one `serbero serve`
// target: configuration, logger, metrics, Postgres pool, the gRPC server and
// its peers, then the services' background work, and the ordered shutdown
// described in pkg/service.
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
	"strconv"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
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
}

// env is everything a service constructor may use.
type env struct {
	cfg    *config.Config
	dev    bool
	loaded *config.Loaded
	log    *slog.Logger
	peers  *peers
	reg    prometheus.Registerer
	// setHealth sets a component's gRPC health status.
	setHealth func(name string, serving bool)
	stopping  context.Context
	target    config.Target
}

// Run runs the target until ctx is cancelled, then shuts down in order.
func Run(ctx context.Context, opts Options) (err error) {
	cfg := opts.Loaded.Config
	level, err := logging.ParseLevel(cfg.Serbero.LogLevel)
	if err != nil {
		return fmt.Errorf("configuration error: [serbero].log_level: %w", err)
	}
	log := logging.New(opts.Stderr, cfg.Server.LogFormat, level).With("target", string(opts.Target))
	memLimit := service.TuneGC(os.Getenv)
	for _, w := range opts.Loaded.Warnings {
		log.Warn("config warning: " + w)
	}
	log.Info("starting serbero",
		"version", opts.Version, "config", opts.Loaded.Path, "gogc", gogc(), "memory_limit_bytes", memLimit, "mostro_pubkey", cfg.Mostro.Pubkey,
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
			return errors.New("configuration error: [server].auth_token is required for a single-service target (SERBERO_AUTH_TOKEN or SERBERO_AUTH_TOKEN_FILE); only --target=all generates one")
		}
		token = randomToken()
		log.Info("generated an in-process service token (target all)")
	}

	pool, err := pgdb.Open(ctx, cfg.Database.URL.Reveal(), cfg.Database.MaxConns)
	if err != nil {
		return err
	}
	defer pool.Close()

	lis, err := net.Listen("tcp", cfg.Server.GRPCListen)
	if err != nil {
		return fmt.Errorf("listen grpc %s: %w", cfg.Server.GRPCListen, err)
	}
	var metricsLis net.Listener
	if cfg.Server.MetricsListen != "" {
		if metricsLis, err = net.Listen("tcp", cfg.Server.MetricsListen); err != nil {
			lis.Close()
			return fmt.Errorf("listen metrics %s: %w", cfg.Server.MetricsListen, err)
		}
	}

	reg := metrics.NewRegistry()
	stopping, stopAll := context.WithCancel(context.WithoutCancel(ctx))
	defer stopAll()
	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()

	srv, err := grpcserver.New(grpcserver.Options{
		AuthToken:  token,
		BeforeStop: stopAll,
		Drain:      cfg.Server.Drain(),
		Grace:      cfg.Server.ShutdownGrace(),
		Logger:     log.With("component", "grpc"),
		ReadyCheck: pgdb.ReadyCheck(pool),
		Reflection: cfg.Server.Reflection,
		Registerer: reg,
	})
	if err != nil {
		lis.Close()
		return err
	}

	e := &env{
		cfg: cfg, dev: opts.Dev, loaded: opts.Loaded, log: log, reg: reg, setHealth: srv.SetHealth, stopping: stopping, target: opts.Target,
		peers: &peers{self: dialable(lis.Addr()), token: token, target: opts.Target, conns: map[string]*grpc.ClientConn{}},
	}
	defer e.peers.close()
	services, err := e.build(pool)
	if err != nil {
		lis.Close()
		return err
	}
	for _, s := range services {
		s.svc.Register(srv.GRPC())
	}

	var g errgroup.Group
	g.Go(func() error {
		defer stopAll()
		return srv.Serve(runCtx, lis)
	})
	if metricsLis != nil {
		g.Go(func() error { return metrics.Serve(stopping, metricsLis, reg, log.With("component", "metrics")) })
	}
	g.Go(func() error {
		select {
		case <-srv.Ready():
		case <-stopping.Done():
			return nil
		}
		var sg errgroup.Group
		for _, s := range services {
			sg.Go(func() error {
				if err := s.svc.Run(stopping); err != nil {
					cancelRun() // one failed service stops the process
					return fmt.Errorf("%s: %w", s.name, err)
				}
				return nil
			})
		}
		return sg.Wait()
	})
	err = g.Wait()
	if err == nil {
		log.Info("stopped cleanly")
	}
	return err
}

type namedService struct {
	name config.Target
	svc  service.Service
}

// build constructs the services of the target, in start order.
func (e *env) build(pool *pgxpool.Pool) ([]namedService, error) {
	builders := map[config.Target]func(*pgxpool.Pool) (service.Service, error){
		config.TargetRelaygw:       e.relaygw,
		config.TargetIntakesvc:     e.intakesvc,
		config.TargetAuthsvc:       e.authsvc,
		config.TargetMediationsvc:  e.mediationsvc,
		config.TargetEscalationsvc: e.escalationsvc,
	}
	var out []namedService
	for _, t := range config.Services {
		if !e.target.Includes(t) {
			continue
		}
		svc, err := builders[t](pool)
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", t, err)
		}
		out = append(out, namedService{name: t, svc: svc})
	}
	return out, nil
}

// logger returns the logger of one service.
func (e *env) logger(t config.Target) *slog.Logger { return e.log.With("service", string(t)) }

// peers dials other services once each.
type peers struct {
	conns  map[string]*grpc.ClientConn
	mu     sync.Mutex
	self   string
	target config.Target
	token  string
}

// conn returns the connection to peer, at its configured address or, when
// this process runs it, at this process's own listener.
func (p *peers) conn(peer config.Target, configured string) (*grpc.ClientConn, error) {
	addr := configured
	if addr == "" {
		if !p.target.Includes(peer) {
			return nil, fmt.Errorf("configuration error: [services].%s is required for target %s (%s)", peer, p.target, config.EnvName("services."+string(peer)))
		}
		addr = p.self
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpcclient.Dial(addr, grpcclient.Options{Token: p.token})
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

// dialable turns a listen address into one a client can dial (":50051" or
// "0.0.0.0:50051" become "127.0.0.1:50051").
func dialable(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// gogc is the GC target in effect, for the start-up log.
func gogc() string {
	if v := os.Getenv("GOGC"); v != "" {
		return v
	}
	return strconv.Itoa(service.GCPercent)
}

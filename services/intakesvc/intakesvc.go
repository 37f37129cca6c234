package intakesvc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/gauge"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/renotify"
	"github.com/serbero/serbero/services/intakesvc/internal/retention"
	"github.com/serbero/serbero/services/intakesvc/internal/server"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
	"github.com/serbero/serbero/services/intakesvc/internal/take"
)

// ListenerApplicationName names intakesvc's LISTEN connection in
// pg_stat_activity.
const ListenerApplicationName = "serbero-intakesvc-listen"

// Deps are what intakesvc needs from the process.
type Deps struct {
	// Config is intakesvc's configuration (validated by New).
	Config     Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	Registerer prometheus.Registerer
	Relaygw    relaygwv1.RelayGatewayServiceClient
	// Clock is the clock of every loop; nil is the real clock.
	Clock clockwork.Clock
}

// Service is intakesvc.
type Service struct {
	*server.Server
	cfg      Config
	log      *slog.Logger
	clock    clockwork.Clock
	st       *store.Store
	m        *metrics.Metrics
	changes  *changefeed.Broadcast
	listener *pglisten.Listener
	sub      *pglisten.Subscription
	out      *outbox.Outbox
	intake   *intake.Intake
	renotify *renotify.Timer
	retain   *retention.Job

	// invalid are the configured solvers no DM can be addressed to,
	// reported at start.
	invalid []invalidSolver
}

// invalidSolver is a configured solver whose pubkey no DM can reach.
type invalidSolver struct {
	index  int
	pubkey string
	err    error
}

// New builds intakesvc; nothing connects before Run.
func New(deps Deps) (*Service, error) {
	if deps.Pool == nil || deps.Relaygw == nil {
		return nil, errors.New("intakesvc: Pool and Relaygw are required")
	}
	cfg := deps.Config
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	base := deps.Logger
	if base == nil {
		base = slog.New(slog.DiscardHandler)
	}
	log := base.With("component", "intakesvc")
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	st := store.New(deps.Pool)
	m := metrics.New(deps.Registerer)
	changes := changefeed.NewBroadcast()
	listener, err := pglisten.New(pglisten.Options{ConnConfig: deps.Pool.Config().ConnConfig,
		ApplicationName: ListenerApplicationName, Logger: base, Clock: clock}) // pglisten names its own component
	if err != nil {
		return nil, fmt.Errorf("intakesvc: change listener: %w", err)
	}
	sub, err := listener.Subscribe(store.ChangesChannel)
	if err != nil {
		return nil, fmt.Errorf("intakesvc: change listener: %w", err)
	}

	// Only solvers a DM can be addressed to are retried; an invalid
	// pubkey stays invalid until the configuration changes (a restart).
	var reachable []string
	var invalid []invalidSolver
	for i, pk := range cfg.Solvers {
		if _, err := nostrkey.Normalize(pk); err != nil {
			invalid = append(invalid, invalidSolver{index: i, pubkey: pk, err: err})
			continue
		}
		reachable = append(reachable, pk)
	}
	t := cfg.Tuning
	out := outbox.New(outbox.Config{Workers: t.Workers, SendTimeout: t.SendTimeout, PollInterval: t.PollInterval,
		SendAttempts: t.SendAttempts, RetryBase: t.RetryBase, NobodyReachable: len(reachable) == 0},
		outbox.Deps{Store: st, Relaygw: deps.Relaygw, Metrics: m, Changes: changes, Logger: log, Clock: clock})
	in := intake.New(intake.Config{MostroPubkey: cfg.MostroPubkey, Solvers: cfg.Solvers, Workers: t.IntakeWorkers},
		intake.Deps{Store: st, Relaygw: deps.Relaygw, Metrics: m, Changes: changes, Outbox: out, Logger: log, Clock: clock})
	timer := renotify.New(renotify.Policy{After: cfg.RenotifyAfter, Solvers: cfg.Solvers, Reachable: reachable},
		cfg.RenotifyEvery, renotify.Deps{Store: st, Outbox: out, Metrics: m, Logger: log, Clock: clock})
	retain := retention.New(retention.Config{Period: cfg.Retention, Interval: cfg.RetentionInterval}, st, m, log, clock)
	takes := take.New(take.Deps{Store: st, Relaygw: deps.Relaygw, Outbox: out, Changes: changes, Logger: log, Clock: clock})
	return &Service{
		Server: server.New(st, takes, changes, clock),
		cfg:    cfg, log: log, clock: clock, st: st, m: m, changes: changes, listener: listener, sub: sub,
		out: out, intake: in, renotify: timer, retain: retain, invalid: invalid,
	}, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { intakesvcv1.RegisterIntakeServiceServer(gs, s.Server) }

// Run does the background work until ctx is cancelled: the intake
// stream, the outbox, the re-notification timer, the change listener, the
// per-state gauge and retention.
func (s *Service) Run(ctx context.Context) error {
	if len(s.cfg.Solvers) == 0 {
		s.log.Warn("no solvers configured; disputes will be persisted but no notifications sent")
	}
	for _, inv := range s.invalid {
		// Solver pubkeys are public; the error says what is wrong with it.
		s.log.Error("invalid solver pubkey: this solver cannot be notified until the configuration is fixed",
			"index", inv.index, "solver", inv.pubkey, "error", inv.err)
	}
	if len(s.cfg.Solvers) > 0 && len(s.invalid) == len(s.cfg.Solvers) {
		s.log.Warn("no configured solver has a valid pubkey; disputes will be persisted but stay new (nobody can be notified)")
	}
	gaugeEvery := s.cfg.Tuning.GaugeInterval
	if gaugeEvery <= 0 {
		gaugeEvery = 10 * time.Second
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = s.listener.Run(ctx) })
	wg.Go(func() { changefeed.Follow(ctx, s.sub.C(), s.changes) })
	wg.Go(func() { s.out.Run(ctx) })
	wg.Go(func() { s.intake.Run(ctx) })
	wg.Go(func() { s.renotify.Run(ctx) })
	wg.Go(func() { gauge.Run(ctx, s.st, s.m, gaugeEvery, s.clock, s.log) })
	wg.Go(func() { s.retain.Run(ctx) })
	wg.Wait()
	// The intake may have handed leased DMs over after the outbox stopped.
	s.out.ReleaseWaiting(ctx)
	return nil
}

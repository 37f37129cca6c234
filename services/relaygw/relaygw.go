package relaygw

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

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/services/relaygw/devrelay"
	"github.com/serbero/serbero/services/relaygw/internal/chat"
	"github.com/serbero/serbero/services/relaygw/internal/disputes"
	"github.com/serbero/serbero/services/relaygw/internal/dm"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/mostroinfo"
	"github.com/serbero/serbero/services/relaygw/internal/mostroreq"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/retention"
	"github.com/serbero/serbero/services/relaygw/internal/server"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// Deps are what relaygw needs from the process.
type Deps struct {
	// Config is relaygw's configuration (see Config.Validate).
	Config     Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	PrivateKey config.Secret
	Registerer prometheus.Registerer
	// Clock is the one clock of relaygw's loops and timestamps; nil is the
	// real clock.
	Clock clockwork.Clock
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is. It goes away once pkg/grpcserver cancels
	// every stream's context at shutdown by itself.
	Stopping context.Context
	// Dev (serve --dev): when no relays are configured, start an embedded
	// relay on Config.DevRelayListen and use it.
	Dev bool
	// InitialBackoff overrides the first reconnect delay (tests; default
	// 250ms).
	InitialBackoff time.Duration
}

// Service is relaygw.
type Service struct {
	deps     Deps
	log      *slog.Logger
	id       *identity.Identity
	mostro   string
	store    *store.Store
	pool     *pool.Pool
	dms      *dm.Sender
	disputes *disputes.Ingest
	info     *mostroinfo.Cache
	requests *mostroreq.Requester
	chat     *chat.Manager
	devRelay string // listen address of the embedded dev relay, if any
	api      *server.Server
	prune    *retention.Job // nil when retention is off
}

// New builds relaygw. It parses Serbero's key (a bad key is reported
// without echoing it) and warns when there is nowhere to connect.
func New(deps Deps) (*Service, error) {
	if deps.Logger == nil || deps.Pool == nil {
		return nil, errors.New("relaygw: Logger and Pool are required")
	}
	id, err := identity.Load(deps.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("relaygw: %w", err)
	}
	cfg := deps.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("relaygw: configuration: %w", err)
	}
	mostroPK, err := nostrkey.Normalize(cfg.MostroPubkey)
	if err != nil { // Validate accepted it: cannot happen
		return nil, fmt.Errorf("relaygw: [mostro].pubkey: %w", err)
	}
	if deps.Stopping == nil {
		deps.Stopping = context.Background()
	}
	if deps.Clock == nil {
		deps.Clock = clockwork.NewRealClock()
	}
	// Sub-components add their own component (relaygw.pool, relaygw.dm, ...);
	// the process logger already names the service.
	log := deps.Logger
	s := &Service{deps: deps, log: log, id: id, mostro: mostroPK, store: store.New(deps.Pool)}

	urls := cfg.Relays
	if len(urls) == 0 {
		if deps.Dev {
			s.devRelay = cfg.DevRelayListen
			urls = []string{"ws://" + s.devRelay}
		} else {
			// As the reference daemon: keep running (nothing arrives, every
			// send is reported undelivered) but say so loudly.
			log.Warn("no relays configured; client will not receive any events (add [[relays]], or use serve --dev for an embedded relay)")
		}
	}

	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "serbero_relaygw_events_rejected_total",
		Help: "Events delivered by relays that relaygw refused, by stream and reason (wrong_kind, wrong_author, bad_id, bad_signature, malformed, unstorable_text, oversized_d_tag, too_many_tags, oversized_tag, oversized_content, ...).",
	}, []string{"stream", "reason"})
	poolMetrics, err := pool.NewMetrics(deps.Registerer)
	if err != nil {
		return nil, err
	}
	if deps.Registerer != nil {
		if err := deps.Registerer.Register(rejected); err != nil {
			return nil, fmt.Errorf("register relaygw metrics: %w", err)
		}
	}
	s.pool = pool.New(pool.Options{
		URLs:           urls,
		PublishTimeout: cfg.PublishTimeout,
		InitialBackoff: deps.InitialBackoff,
		MaxBackoff:     cfg.ReconnectMaxBackoff,
		Logger:         log.With("component", "relaygw.pool"),
		Metrics:        poolMetrics,
	})
	if s.dms, err = dm.New(dm.Options{
		Identity: id, Store: s.store, Pool: s.pool, Logger: log.With("component", "relaygw.dm"),
		Registerer: deps.Registerer, Clock: deps.Clock,
	}); err != nil {
		return nil, err
	}
	if s.disputes, err = disputes.New(disputes.Options{
		Mostro: mostroPK, Store: s.store, Logger: log.With("component", "relaygw.disputes"), Rejected: rejected, Registerer: deps.Registerer,
		Margin: cfg.ResubscribeMargin, Backfill: cfg.DisputeBackfill, Now: deps.Clock.Now,
	}); err != nil {
		return nil, err
	}
	s.info = mostroinfo.New(mostroPK, s.store, log.With("component", "relaygw.mostroinfo"), rejected, deps.Clock)
	lookback := cfg.GiftWrapLookback
	if s.requests, err = mostroreq.New(mostroreq.Options{
		Identity: id, Mostro: mostroPK, Pool: s.pool, Info: s.info, Lookback: lookback,
		Logger: log.With("component", "relaygw.mostroreq"), Rejected: rejected, Registerer: deps.Registerer,
		Clock: deps.Clock,
	}); err != nil {
		return nil, err
	}
	if s.chat, err = chat.New(chat.Options{
		Identity: id, Store: s.store, Pool: s.pool, Lookback: lookback,
		Margin:     cfg.ResubscribeMargin,
		SendLegacy: cfg.SendLegacyChat,
		Logger:     log.With("component", "relaygw.chat"), Registerer: deps.Registerer,
		Now: deps.Clock.Now,
	}); err != nil {
		return nil, err
	}
	if cfg.Retention.Keep > 0 {
		if s.prune, err = retention.New(retention.Options{
			Store: s.store, Keep: cfg.Retention.Keep, Interval: cfg.Retention.Interval, BatchSize: cfg.Retention.BatchSize,
			Relays: urls, Logger: log.With("component", "relaygw.retention"), Registerer: deps.Registerer, Clock: deps.Clock,
		}); err != nil {
			return nil, err
		}
	}
	s.api = server.New(server.Deps{
		Identity: id, DMs: s.dms, Disputes: s.disputes, Info: s.info, Requests: s.requests,
		Chat: s.chat, Pool: s.pool, Stopping: deps.Stopping,
		Consumers: retention.NewConsumers(s.store, log.With("component", "relaygw.retention")),
	})
	return s, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { relaygwv1.RegisterRelayGatewayServiceServer(gs, s.api) }

// PublicKey is Serbero's public key, hex.
func (s *Service) PublicKey() string { return s.id.PublicKey() }

// Run maintains relay connections and subscriptions until ctx is
// cancelled.
func (s *Service) Run(ctx context.Context) error {
	if s.devRelay != "" {
		dr, err := devrelay.Start(s.devRelay, s.log.With("component", "relaygw.devrelay"))
		if err != nil {
			return fmt.Errorf("start the dev relay: %w", err)
		}
		defer dr.Close()
		s.log.Info("dev relay listening (no [[relays]] configured)", "url", dr.URL())
	}
	if err := s.info.Load(ctx); err != nil {
		s.log.Warn("could not load the cached mostro info; waiting for the relays", "error", err)
	}
	margin := s.deps.Config.ResubscribeMargin
	s.pool.Subscribe(s.info.Spec())
	s.pool.Subscribe(s.disputes.Spec(s.store))
	for _, spec := range s.requests.Specs(s.store, margin) {
		s.pool.Subscribe(spec)
	}
	if err := s.chat.Start(ctx); err != nil {
		s.log.Warn("could not load the registered chat channels yet; retrying in the background", "error", err)
	}
	var background sync.WaitGroup
	if s.prune != nil {
		background.Go(func() { s.prune.Run(ctx) })
	}
	s.log.Info("relaygw running", "pubkey", s.id.PublicKey(), "mostro_pubkey", s.mostro, "relays", len(s.pool.URLs()),
		"retention", s.deps.Config.Retention.Keep.String())
	s.pool.Run(ctx)
	background.Wait()
	s.dms.Close()
	return nil
}

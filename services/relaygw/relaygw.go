package relaygw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/relaygw/devrelay"
	"github.com/serbero/serbero/services/relaygw/internal/chat"
	"github.com/serbero/serbero/services/relaygw/internal/disputes"
	"github.com/serbero/serbero/services/relaygw/internal/dm"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/mostroinfo"
	"github.com/serbero/serbero/services/relaygw/internal/mostroreq"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// Deps are what relaygw needs from the process.
type Deps struct {
	Config     *config.Config
	Logger     *slog.Logger
	Pool       *pgxpool.Pool
	PrivateKey config.Secret
	Registerer prometheus.Registerer
	// Stopping is cancelled when the process starts to stop; stream
	// handlers end when it is.
	Stopping context.Context
	// Dev (serve --dev): when no [[relays]] are configured, start an
	// embedded relay on [relaygw].dev_relay_listen and use it.
	Dev bool
	// InitialBackoff overrides the first reconnect delay (tests; default
	// 250ms).
	InitialBackoff time.Duration
}

// Service is relaygw.
type Service struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer

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
}

// New builds relaygw. It parses Serbero's key (a bad key is reported
// without echoing it) and warns when there is nowhere to connect.
func New(deps Deps) (*Service, error) {
	if deps.Config == nil || deps.Logger == nil || deps.Pool == nil {
		return nil, errors.New("relaygw: Config, Logger and Pool are required")
	}
	id, err := identity.Load(deps.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("relaygw: %w", err)
	}
	cfg := deps.Config
	mostroPK, err := config.NormalizePubkey(cfg.Mostro.Pubkey)
	if err != nil {
		return nil, fmt.Errorf("relaygw: [mostro].pubkey: %w", err)
	}
	if deps.Stopping == nil {
		deps.Stopping = context.Background()
	}
	// Sub-components add their own component (relaygw.pool, relaygw.dm, ...);
	// the process logger already names the service.
	log := deps.Logger
	s := &Service{deps: deps, log: log, id: id, mostro: mostroPK, store: store.New(deps.Pool)}

	urls := cfg.RelayURLs()
	if len(urls) == 0 {
		if deps.Dev {
			s.devRelay = cfg.Relaygw.DevRelayListen
			urls = []string{"ws://" + s.devRelay}
		} else {
			// As the reference daemon: keep running (nothing arrives, every
			// send is reported undelivered) but say so loudly.
			log.Warn("no relays configured; client will not receive any events (add [[relays]], or use serve --dev for an embedded relay)")
		}
	}

	rejected := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "serbero_relaygw_events_rejected_total",
		Help: "Events delivered by relays that relaygw refused, by stream and reason (wrong_kind, wrong_author, bad_id, bad_signature, malformed, ...).",
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
		PublishTimeout: time.Duration(cfg.Relaygw.PublishTimeoutSeconds) * time.Second,
		InitialBackoff: deps.InitialBackoff,
		MaxBackoff:     time.Duration(cfg.Relaygw.ReconnectMaxBackoffSeconds) * time.Second,
		Logger:         log.With("component", "relaygw.pool"),
		Metrics:        poolMetrics,
	})
	if s.dms, err = dm.New(id, s.store, s.pool, log.With("component", "relaygw.dm"), deps.Registerer); err != nil {
		return nil, err
	}
	if s.disputes, err = disputes.New(disputes.Options{
		Mostro: mostroPK, Store: s.store, Logger: log.With("component", "relaygw.disputes"), Rejected: rejected, Registerer: deps.Registerer,
		Margin:   time.Duration(cfg.Relaygw.ResubscribeMarginSeconds) * time.Second,
		Backfill: time.Duration(cfg.Relaygw.DisputeBackfillSeconds) * time.Second,
	}); err != nil {
		return nil, err
	}
	s.info = mostroinfo.New(mostroPK, s.store, log.With("component", "relaygw.mostroinfo"), rejected)
	lookback := time.Duration(cfg.Relaygw.GiftWrapLookbackSeconds) * time.Second
	if s.requests, err = mostroreq.New(mostroreq.Options{
		Identity: id, Mostro: mostroPK, Pool: s.pool, Info: s.info, Lookback: lookback,
		Logger: log.With("component", "relaygw.mostroreq"), Rejected: rejected, Registerer: deps.Registerer,
	}); err != nil {
		return nil, err
	}
	if s.chat, err = chat.New(chat.Options{
		Identity: id, Store: s.store, Pool: s.pool, Lookback: lookback,
		Margin:     time.Duration(cfg.Relaygw.ResubscribeMarginSeconds) * time.Second,
		SendLegacy: cfg.Chat.SendLegacyForm,
		Logger:     log.With("component", "relaygw.chat"), Registerer: deps.Registerer,
	}); err != nil {
		return nil, err
	}
	return s, nil
}

// Register registers the gRPC API.
func (s *Service) Register(gs *grpc.Server) { relaygwv1.RegisterRelayGatewayServiceServer(gs, s) }

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
	margin := time.Duration(s.deps.Config.Relaygw.ResubscribeMarginSeconds) * time.Second
	s.pool.Subscribe(s.info.Spec())
	s.pool.Subscribe(s.disputes.Spec(s.store))
	for _, spec := range s.requests.Specs(s.store, margin) {
		s.pool.Subscribe(spec)
	}
	if err := s.chat.Start(ctx); err != nil {
		s.log.Warn("could not load the registered chat channels yet; retrying in the background", "error", err)
	}
	s.log.Info("relaygw running", "pubkey", s.id.PublicKey(), "mostro_pubkey", s.mostro, "relays", len(s.pool.URLs()))
	s.pool.Run(ctx)
	s.dms.Close()
	return nil
}

// streamContext ends when the RPC ends or the process starts to stop.
func (s *Service) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.deps.Stopping, cancel)
	return ctx, func() {
		stop()
		cancel()
	}
}

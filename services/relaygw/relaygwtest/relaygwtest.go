// Package relaygwtest runs a real relaygw for other services' tests: an
// in-process relay (pkg/testkit/relay), relaygw's Service on its own gRPC
// server (pkg/grpcserver, 127.0.0.1, a random port, a random service
// token), its background work running, and a client connected to it.
//
// Services share one database in production, so pass your test's
// *pgdbtest.DB in Options.DB. Everything is stopped at test cleanup.
//
//	h := relaygwtest.Start(t, relaygwtest.Options{DB: db})
//	h.Client.SendDirectMessage(ctx, ...)        // relaygwv1 client
//	h.Relay                                    // the relay, with fault injection
//	h.Mostro                                   // the Mostro keys ([mostro].pubkey)
//	h.Serbero                                  // Serbero's keys (for fake parties)
//
// Start returns once relaygw is connected to the relay and its
// subscriptions are in place, so events published afterwards are seen.
package relaygwtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw"
)

// Options configures Start. Every field is optional.
type Options struct {
	// DB is the database relaygw uses (share your test's); nil creates one.
	DB *pgdbtest.DB
	// Relay is the relay relaygw connects to; nil starts one. It must be
	// running.
	Relay *relay.Relay
	// ExtraRelays are more relay URLs to configure (e.g. a dead one).
	ExtraRelays []string
	// Serbero is Serbero's key; zero generates one.
	Serbero keys.Keys
	// Mostro is the Mostro node's key ([mostro].pubkey); zero generates
	// one.
	Mostro keys.Keys
	// Config tweaks relaygw's configuration after the defaults are set.
	Config func(*relaygw.Config)
	// Clock is relaygw's clock; nil is the real clock.
	Clock clockwork.Clock
	// Logger receives relaygw's logs; nil writes them to the test log.
	Logger *slog.Logger
	// NoWait skips waiting for relaygw's subscriptions at start.
	NoWait bool
}

// Harness is a running relaygw.
type Harness struct {
	// Client is connected to relaygw with the service token.
	Client relaygwv1.RelayGatewayServiceClient
	// Conn is the client connection.
	Conn *grpc.ClientConn
	// Addr is relaygw's gRPC address.
	Addr string
	// Token is the service token.
	Token string
	// Relay is the in-process relay.
	Relay *relay.Relay
	// DB is the database.
	DB *pgdbtest.DB
	// Serbero is Serbero's key pair (relaygw holds the same secret).
	Serbero keys.Keys
	// Mostro is the Mostro node's key pair.
	Mostro keys.Keys
	// Config is the configuration relaygw runs with.
	Config *relaygw.Config
	// Service is the relaygw service.
	Service *relaygw.Service
	// Registry holds relaygw's metrics.
	Registry *prometheus.Registry

	clock    clockwork.Clock
	stop     func()
	stopOnce sync.Once
	logger   *slog.Logger // Options.Logger, kept for restarts
}

// Start starts relaygw and returns once it is subscribed (unless NoWait).
func Start(t testing.TB, opts Options) *Harness {
	t.Helper()
	if opts.DB == nil {
		opts.DB = pgdbtest.NewDB(t)
	}
	if opts.Relay == nil {
		opts.Relay = relay.Start(t)
	}
	if opts.Serbero.IsZero() {
		opts.Serbero = keys.Generate()
	}
	if opts.Mostro.IsZero() {
		opts.Mostro = keys.Generate()
	}
	cfg := relaygw.DefaultConfig()
	cfg.MostroPubkey = opts.Mostro.PublicKey()
	cfg.Relays = append([]string{opts.Relay.URL()}, opts.ExtraRelays...)
	cfg.ReconnectMaxBackoff = time.Second
	cfg.PublishTimeout = 3 * time.Second
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	h := &Harness{Relay: opts.Relay, DB: opts.DB, Serbero: opts.Serbero, Mostro: opts.Mostro, Config: &cfg, clock: opts.Clock, logger: opts.Logger}
	h.start(t, opts)
	t.Cleanup(h.Stop)
	if !opts.NoWait {
		h.WaitSubscribed(t)
	}
	return h
}

func (h *Harness) start(t testing.TB, opts Options) {
	t.Helper()
	logger := opts.Logger
	var tw *testWriter
	if logger == nil {
		tw = &testWriter{t: t}
		logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	h.Registry = prometheus.NewRegistry()
	stopping, stopAll := context.WithCancel(context.Background())
	svc, err := relaygw.New(relaygw.Deps{
		Config:         *h.Config,
		Clock:          h.clock,
		Logger:         logger,
		Pool:           h.DB.Pool,
		PrivateKey:     config.NewSecret(h.Serbero.RevealSecretHex()),
		Registerer:     h.Registry,
		Stopping:       stopping,
		InitialBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		stopAll()
		t.Fatalf("relaygwtest: new relaygw: %v", err)
	}
	h.Service = svc
	h.Token = randomHex(16)
	srv, err := grpcserver.New(grpcserver.Options{
		AuthToken:  h.Token,
		BeforeStop: stopAll,
		Grace:      2 * time.Second,
		Logger:     logger.With("component", "grpc"),
		ReadyCheck: pgdb.ReadyCheck(h.DB.Pool),
		Registerer: h.Registry,
	})
	if err != nil {
		stopAll()
		t.Fatalf("relaygwtest: grpc server: %v", err)
	}
	svc.Register(srv.GRPC())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		stopAll()
		t.Fatalf("relaygwtest: listen: %v", err)
	}
	h.Addr = lis.Addr().String()
	serveCtx, cancelServe := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = srv.Serve(serveCtx, lis)
	}()
	go func() {
		defer wg.Done()
		select {
		case <-srv.Ready():
		case <-stopping.Done():
			return
		}
		_ = svc.Run(stopping)
	}()
	conn, err := grpcclient.Dial(h.Addr, grpcclient.Options{Token: h.Token})
	if err != nil {
		cancelServe()
		stopAll()
		t.Fatalf("relaygwtest: dial: %v", err)
	}
	h.Conn = conn
	h.Client = relaygwv1.NewRelayGatewayServiceClient(conn)
	h.stop = func() {
		_ = conn.Close()
		cancelServe() // drain 0, then BeforeStop (stopAll), graceful stop
		stopAll()
		wg.Wait()
		if tw != nil {
			tw.close()
		}
	}
}

// Stop stops relaygw (idempotent; also done at cleanup).
func (h *Harness) Stop() {
	h.stopOnce.Do(func() {
		if h.stop != nil {
			h.stop()
		}
	})
}

// Restart stops relaygw and starts a new one with the same configuration,
// keys, database and relay, as after a process restart.
func (h *Harness) Restart(t testing.TB) {
	t.Helper()
	h.Stop()
	h.stopOnce = sync.Once{}
	h.start(t, Options{Logger: h.logger})
	h.WaitSubscribed(t)
}

// WaitSubscribed waits until relaygw has subscribed to the Mostro node's
// dispute events on the relay.
func (h *Harness) WaitSubscribed(t testing.TB) {
	t.Helper()
	h.Relay.WaitSubscribed(t, 10*time.Second, func(f nostr.Filter) bool {
		return len(f.Kinds) == 1 && f.Kinds[0] == 38386 && len(f.Authors) == 1 && f.Authors[0] == h.Mostro.PublicKey()
	})
}

// WaitMostroInfo waits until relaygw has the node's kind 38385 info event,
// as a running node's would be: without it relaygw refuses Mostro requests
// and authsvc counts the node as unreachable.
func (h *Harness) WaitMostroInfo(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, lastErr = h.Client.GetMostroInfo(ctx, &relaygwv1.GetMostroInfoRequest{})
		cancel()
		if lastErr == nil {
			return
		}
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("relaygwtest: test ended waiting for the mostro info: %v", lastErr)
		}
	}
	t.Fatalf("relaygwtest: relaygw has no mostro info after 10s: %v", lastErr)
}

// PublishAsMostro signs ev with the Mostro key and publishes it to the
// relay.
func (h *Harness) PublishAsMostro(t testing.TB, ev nostr.Event) nostr.Event {
	t.Helper()
	if err := h.Mostro.Sign(&ev); err != nil {
		t.Fatalf("relaygwtest: sign: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Relay.Publish(ctx, ev); err != nil {
		t.Fatalf("relaygwtest: publish: %v", err)
	}
	return ev
}

// Metric returns the value of a counter or gauge of relaygw's registry
// whose labels include the given name=value pairs (summed over matches).
func (h *Harness) Metric(t testing.TB, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := h.Registry.Gather()
	if err != nil {
		t.Fatalf("relaygwtest: gather metrics: %v", err)
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// testWriter sends log lines to the test log until the harness stops.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
}

var _ io.Writer = (*testWriter)(nil)

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

package intakesvc_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/fakemostro"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/intakesvc"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// wait is the timeout of positive waits (the reference uses 30 s; things
// here take milliseconds).
const wait = 15 * time.Second

// env is one test's world: Postgres, the in-process relay, a real relaygw
// (relaygwtest, on the test's database), the fake Mostro node, and the
// intakesvc replicas started on them.
type env struct {
	t      testing.TB
	ctx    context.Context
	db     *pgdbtest.DB
	relay  *relay.Relay
	gw     *relaygwtest.Harness
	rg     relaygwv1.RelayGatewayServiceClient
	mostro *fakemostro.Mostro
	// serberoPK is Serbero's pubkey (the DMs' sender).
	serberoPK string
	mostroPK  string
}

func newEnv(t testing.TB) *env { return newEnvWith(t, 0) }

// newEnvWith is newEnv with pools of maxConns connections for relaygw and
// intakesvc (0: pgxpool's default), as [database].max_conns does.
func newEnvWith(t testing.TB, maxConns int) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background()}
	e.db = pgdbtest.NewDB(t)
	if maxConns > 0 {
		db := *e.db
		sep := "?"
		if strings.Contains(db.URL, "?") {
			sep = "&"
		}
		db.Pool = openPool(t, db.URL+sep+"pool_max_conns="+strconv.Itoa(maxConns))
		e.db = &db
	}
	e.relay = relay.Start(t)
	mk := keys.Generate()
	e.mostro = fakemostro.Start(t, fakemostro.Config{Keys: mk, Name: "Test node"}, e.relay.URL())
	// relaygw shares e.db's pool, whose size pool_max_conns bounds.
	e.gw = relaygwtest.Start(t, relaygwtest.Options{DB: e.db, Relay: e.relay, Mostro: mk,
		Logger: slog.New(slog.DiscardHandler)})
	e.rg = e.gw.Client
	e.serberoPK = e.gw.Serbero.PublicKey()
	e.mostroPK = mk.PublicKey()
	return e
}

// solvers starts n fake solvers on the relay.
func (e *env) solvers(n int) []*fakesolver.Solver {
	out := make([]*fakesolver.Solver, n)
	for i := range out {
		out[i] = fakesolver.Start(e.t, e.relay.URL())
	}
	return out
}

// config returns a configuration for the given solver pubkeys, timers at
// 3600 s (never firing) unless changed.
func (e *env) config(solvers ...string) *intakesvc.Config {
	cfg := intakesvc.DefaultConfig()
	cfg.MostroPubkey = e.mostroPK
	cfg.Solvers = solvers
	cfg.RenotifyAfter = 3600 * time.Second
	cfg.RenotifyEvery = 3600 * time.Second
	return &cfg
}

func pubkeys(ss []*fakesolver.Solver) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Pubkey()
	}
	return out
}

// svc is one running intakesvc (a replica).
type svc struct {
	*intakesvc.Service
	api  intakesvcv1.IntakeServiceClient
	reg  *prometheus.Registry
	logs *logtest.Buffer
	stop func()
	// stopping ends the replica's open streams, as the server does when
	// the process starts to stop.
	stopping func()
}

type options struct {
	pool   *pgxpool.Pool
	rg     relaygwv1.RelayGatewayServiceClient
	tuning intakesvc.Tuning
}

// start runs an intakesvc replica with its own gRPC server until the test
// ends (or stop).
func (e *env) start(cfg *intakesvc.Config, opts ...func(*options)) *svc {
	e.t.Helper()
	o := options{pool: e.db.Pool, rg: e.rg}
	for _, f := range opts {
		f(&o)
	}
	log, logs := logtest.New()
	reg := prometheus.NewRegistry()
	c := *cfg
	c.Tuning = o.tuning
	s, err := intakesvc.New(intakesvc.Deps{
		Config: c, Logger: log, Pool: o.pool, Registerer: reg, Relaygw: o.rg,
	})
	require.NoError(e.t, err)
	// The production chain (error boundary included), as serve runs it.
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second})
	require.NoError(e.t, err)
	s.Register(srv.GRPC())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(e.t, err)
	srv.Start(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(e.t, err)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			e.t.Errorf("intakesvc Run: %v", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.EndStreams()
			cancel()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				e.t.Errorf("intakesvc did not stop within 10s")
			}
			conn.Close()
			srv.Stop()
		})
	}
	e.t.Cleanup(func() {
		stop()
		if e.t.Failed() {
			e.t.Logf("intakesvc logs:\n%s", logs.String())
		}
	})
	return &svc{Service: s, api: intakesvcv1.NewIntakeServiceClient(conn), reg: reg, logs: logs, stop: stop, stopping: srv.EndStreams}
}

// open has the fake Mostro open a dispute (initiator "" omits the tag, as
// older nodes) and returns its initiated revision.
func (e *env) open(d, initiator string) nostr.Event {
	e.t.Helper()
	spec := fakemostro.DisputeSpec{DisputeID: d, Initiator: initiator}
	if initiator == "" {
		spec.Initiator, spec.OmitInitiatorTag = "buyer", true
	}
	e.mostro.OpenDispute(spec)
	return e.published(d)
}

// takeOver has a solver (not Serbero) take the dispute: the node publishes
// the in-progress revision (which names no solver).
func (e *env) takeOver(d string) nostr.Event {
	e.t.Helper()
	e.mostro.TakeOver(d, keys.Generate().PublicKey())
	return e.published(d)
}

// setStatus has the node publish a revision with status s.
func (e *env) setStatus(d, s string) nostr.Event {
	e.t.Helper()
	e.mostro.SetStatus(d, mostro.DisputeStatus(s))
	return e.published(d)
}

// published returns the dispute's latest revision once the relay holds it
// (republishing it while the relay was restarting).
func (e *env) published(d string) nostr.Event {
	e.t.Helper()
	revs := e.mostro.Revisions(d)
	ev := revs[len(revs)-1]
	require.Eventually(e.t, func() bool {
		if len(e.relay.Events(nostr.Filter{IDs: []string{ev.ID}})) == 1 {
			return true
		}
		if e.relay.Running() {
			e.relay.Inject(ev) // the node publishes it again
		}
		return false
	}, wait, 20*time.Millisecond, "relay never stored revision %s", ev.ID)
	return ev
}

// count runs a count query.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.db.Pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

// waitCount waits until a count query returns n.
func (e *env) waitCount(n int, sql string, args ...any) {
	e.t.Helper()
	var got int
	require.Eventually(e.t, func() bool {
		if err := e.db.Pool.QueryRow(e.ctx, sql, args...).Scan(&got); err != nil {
			return false
		}
		return got == n
	}, wait, 10*time.Millisecond, "want %d from %q (last %d)", n, sql, got)
}

// state returns a dispute's lifecycle state.
func (e *env) state(d string) string {
	e.t.Helper()
	var s string
	require.NoError(e.t, e.db.Pool.QueryRow(e.ctx, `SELECT lifecycle_state FROM disputes WHERE dispute_id = $1`, d).Scan(&s))
	return s
}

func (e *env) waitState(d, want string) {
	e.t.Helper()
	e.waitCount(1, `SELECT count(*) FROM disputes WHERE dispute_id = $1 AND lifecycle_state = $2`, d, want)
}

func initialBody(d, initiator string, at nostr.Timestamp) string {
	return "New Mostro dispute requires attention.\ndispute_id: " + d + "\ninitiator: " + initiator +
		"\nevent_timestamp: " + strconv.FormatInt(int64(at), 10) + "\nstatus: initiated"
}

func assignmentBody(d, solver string) string {
	return "Mostro dispute has been taken.\ndispute_id: " + d + "\nassigned_solver: " + solver + "\nlifecycle_state: taken"
}

func renotificationBody(d string, elapsed int64) string {
	return "Mostro dispute is still unattended.\ndispute_id: " + d + "\nlifecycle_state: notified\ntime_elapsed_seconds: " +
		strconv.FormatInt(elapsed, 10)
}

func bodies(ms []fakesolver.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Body
	}
	return out
}

// dbProxy sits between a replica's pool and Postgres so a test can take the
// database away from that replica alone (connections cut, new ones
// refused) and give it back.
type dbProxy struct {
	t      testing.TB
	lis    net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]struct{}
}

func startDBProxy(t *testing.T, dbURL string) (*dbProxy, string) {
	t.Helper()
	u, err := url.Parse(dbURL)
	require.NoError(t, err)
	target := u.Host
	if u.Port() == "" {
		target = net.JoinHostPort(u.Hostname(), "5432")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dbProxy{t: t, lis: lis, target: target, conns: map[net.Conn]struct{}{}}
	go p.serve()
	t.Cleanup(func() {
		lis.Close()
		p.Cut()
	})
	u.Host = lis.Addr().String()
	return p, u.String()
}

func (p *dbProxy) serve() {
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.down {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.mu.Unlock()
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *dbProxy) pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	_ = err
	if !errors.Is(err, net.ErrClosed) {
		dst.Close()
		src.Close()
	}
}

// Cut drops every connection and refuses new ones.
func (p *dbProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// Restore accepts connections again.
func (p *dbProxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

func contains(s, sub string) bool { return countOf(s, sub) > 0 }

func countOf(s, sub string) int {
	n := 0
	for i := 0; ; {
		j := indexFrom(s, sub, i)
		if j < 0 {
			return n
		}
		n++
		i = j + len(sub)
	}
}

func indexFrom(s, sub string, from int) int {
	if from > len(s) {
		return -1
	}
	for i := from; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// metric returns the collector of one metric of a replica, selected by
// label pairs, for testutil.ToFloat64.
func metric(t *testing.T, s *svc, name string, labels ...string) prometheus.Collector {
	t.Helper()
	families, err := s.reg.Gather()
	require.NoError(t, err)
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			match := true
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				match = match && found
			}
			if match {
				v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
				return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return v })
			}
		}
	}
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "x"}, func() float64 { return 0 })
}

// openPool opens a pool on url, closed at cleanup.
func openPool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// waitProcessed waits until intakesvc's durable cursor passed the position
// relaygw stored ev at (ev was handled: applied, skipped or rejected).
func (e *env) waitProcessed(ev nostr.Event) {
	e.t.Helper()
	e.waitCount(1, `SELECT count(*) FROM intake_cursor c, relaygw_dispute_events r
		WHERE r.event_id = $1 AND c.cursor >= r.cursor`, ev.ID)
}

// waitApplied waits until ev is the dispute's newest applied revision.
func (e *env) waitApplied(ev nostr.Event) {
	e.t.Helper()
	e.waitCount(1, `SELECT count(*) FROM disputes WHERE newest_event_id = $1`, ev.ID)
}

// revisionOf matches the relay's events of one dispute with status s.
func revisionOf(d, s string) relay.Match {
	return func(ev *nostr.Event) bool {
		return ev.Kind == 38386 && ev.Tags.GetD() == d && ev.Tags.FindWithValue("s", s) != nil
	}
}

// waitCountAtLeast waits until a count query returns at least n.
func (e *env) waitCountAtLeast(n int, sql string, timeout time.Duration) {
	e.t.Helper()
	var got int
	require.Eventually(e.t, func() bool {
		if err := e.db.Pool.QueryRow(e.ctx, sql).Scan(&got); err != nil {
			return false
		}
		return got >= n
	}, timeout, 20*time.Millisecond, "want at least %d from %q (last %d)", n, sql, got)
}

// Package lease keeps relaygw a singleton: of all the relaygw processes on
// one database, only the one holding this lease connects to relays,
// publishes and consumes. The lease is a Postgres session advisory lock
// held on a dedicated connection (taken out of the pool), so it ends when
// that session ends: a clean stop, a killed process (the kernel closes the
// socket), a Postgres restart or a terminated backend.
//
// Timing, from the lease time L (docs/relaygw.md#singleton):
//
//   - A standby tries the lock every L/4.
//   - The holder confirms its session every L/4 (a round trip bounded by
//     L/4) and blocks reading the connection in between, so a session the
//     server ends is noticed at once. It counts as holding only until L/2
//     after the start of its last confirmation: a holder cut off from
//     Postgres fences itself within L/2 even when nothing fails loudly.
//   - The server is told to drop the session of a vanished holder (TCP
//     keepalives and tcp_user_timeout on that session) after about 3L/4,
//     later than the holder fences itself.
//   - A new holder waits L/2 after taking the lock before it acts, the
//     longest a previous holder cut off from this server could still
//     believe it holds.
//   - A holder that lost the lease competes again only after L, so a
//     standby takes over rather than the replica that just failed.
//
// So a holder that dies is replaced within L (L/4 to notice the free lock,
// L/2 of grace), and two holders never act at once.
package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// Key is the advisory lock key of relaygw's singleton lease ("RGWS"),
// beside relaygw's transaction-level keys (internal/store).
const Key int64 = 0x52475753

// AppName prefixes the application_name of the lease session, so
// pg_stat_activity shows which replica holds it.
const AppName = "serbero-relaygw-lease "

// Options configures a Lease.
type Options struct {
	// Pool is where the dedicated connection comes from.
	Pool *pgxpool.Pool
	// TTL is the lease time L (see the package comment).
	TTL time.Duration
	// Holder is this replica's identity (replica.ID), shown in logs and
	// as the session's application_name.
	Holder string
	// Logger receives acquisitions and losses.
	Logger *slog.Logger
	// Registerer receives serbero_relaygw_lease_held (nil: none).
	Registerer prometheus.Registerer
	// OnChange, if set, is called with true when this replica starts
	// acting as the holder and with false when it stops (before the work
	// of the term is cancelled).
	OnChange func(held bool)
}

// Lease is one replica's competition for the singleton lease.
type Lease struct {
	opts Options
	log  *slog.Logger
	held prometheus.Gauge

	mu        sync.Mutex
	holding   bool
	confirmed time.Time // start of the last successful confirmation (monotonic)
	terms     atomic.Int64
}

// New builds a lease; Run competes for it.
func New(opts Options) (*Lease, error) {
	if opts.Pool == nil || opts.TTL <= 0 {
		return nil, errors.New("lease: Pool and a positive TTL are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Lease{opts: opts, log: opts.Logger, held: prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "serbero_relaygw_lease_held",
		Help: "1 while this relaygw replica holds the singleton lease (connects to relays, publishes and consumes), else 0.",
	})}
	if opts.Registerer != nil {
		if err := opts.Registerer.Register(l.held); err != nil {
			return nil, fmt.Errorf("register lease metrics: %w", err)
		}
	}
	return l, nil
}

func (l *Lease) step() time.Duration  { return max(l.opts.TTL/4, time.Millisecond) }
func (l *Lease) valid() time.Duration { return max(l.opts.TTL/2, time.Millisecond) }

// Held reports whether this replica holds the lease now: it acquired it,
// waited out the grace, and confirmed its session less than L/2 ago.
// Every publish checks it.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.holding && time.Since(l.confirmed) < l.valid()
}

// Terms is how many times this replica has acquired the lease (tests).
func (l *Lease) Terms() int64 { return l.terms.Load() }

func (l *Lease) set(holding bool, confirmed time.Time) {
	l.mu.Lock()
	changed := l.holding != holding
	l.holding = holding
	if holding {
		l.confirmed = confirmed
	}
	l.mu.Unlock()
	if !changed {
		return
	}
	if holding {
		l.held.Set(1)
	} else {
		l.held.Set(0)
	}
	if l.opts.OnChange != nil {
		l.opts.OnChange(holding)
	}
}

func (l *Lease) confirm(at time.Time) {
	l.mu.Lock()
	if l.holding {
		l.confirmed = at
	}
	l.mu.Unlock()
}

// Run competes for the lease until ctx ends. Each time it holds the lease
// it calls work with a context that is cancelled the moment the lease is
// lost (or ctx ends), and waits for work to return before it competes
// again. On a clean stop the lease is released at once.
func (l *Lease) Run(ctx context.Context, work func(ctx context.Context)) {
	defer l.held.Set(0)
	for ctx.Err() == nil {
		conn, err := l.acquire(ctx)
		if err != nil {
			return // ctx ended
		}
		held := l.runTerm(ctx, conn, work)
		// Closing the session releases the lock (and ends it on the server
		// when the holder fenced itself because the server did not answer).
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_ = conn.Close(cctx)
		cancel()
		if held && ctx.Err() == nil {
			// A replica that lost the lease lets the standbys (which try
			// every L/4) take it first: it competes again after L.
			t := time.NewTimer(l.opts.TTL)
			select {
			case <-ctx.Done():
				t.Stop()
			case <-t.C:
			}
		}
	}
}

// runTerm waits out the grace on conn, then runs work until the session
// is lost or ctx ends. It reports whether the term got past the grace.
func (l *Lease) runTerm(ctx context.Context, conn *pgx.Conn, work func(context.Context)) bool {
	l.log.Info("relaygw lease acquired; waiting out the grace before acting", "holder", l.opts.Holder, "grace", l.valid().String())
	if err := l.watch(ctx, conn, time.Now().Add(l.valid())); err != nil || ctx.Err() != nil {
		if err != nil {
			l.log.Warn("relaygw lease lost during the grace", "holder", l.opts.Holder, "error", err)
		}
		return false
	}
	l.terms.Add(1)
	l.set(true, time.Now())
	l.log.Info("relaygw lease held; this replica connects to the relays", "holder", l.opts.Holder)
	termCtx, endTerm := context.WithCancel(ctx)
	defer endTerm()
	done := make(chan struct{})
	go func() {
		defer close(done)
		work(termCtx)
	}()
	// The watch ends when the session fails, ctx ends or work returns.
	watchCtx, endWatch := context.WithCancel(termCtx)
	go func() {
		select {
		case <-done:
			endWatch()
		case <-watchCtx.Done():
		}
	}()
	err := l.watch(watchCtx, conn, time.Time{})
	endWatch()
	l.set(false, time.Time{}) // fenced before the term's work is even told
	endTerm()
	<-done
	switch {
	case ctx.Err() != nil:
		l.log.Info("relaygw lease released (stopping)", "holder", l.opts.Holder)
	case err != nil:
		l.log.Error("relaygw lease lost; stopped publishing and consuming, competing again", "holder", l.opts.Holder, "error", err)
	default:
		l.log.Warn("relaygw relay work ended on its own; giving the lease up and competing again", "holder", l.opts.Holder)
	}
	return true
}

// watch confirms the session every L/4 and blocks reading it in between,
// until until (zero: forever) or ctx ends (nil), or the session fails
// (its error).
func (l *Lease) watch(ctx context.Context, conn *pgx.Conn, until time.Time) error {
	for {
		next := time.Now().Add(l.step())
		if !until.IsZero() && until.Before(next) {
			next = until
		}
		wctx, cancel := context.WithDeadline(ctx, next)
		err := conn.PgConn().WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !isTimeout(err) {
			return fmt.Errorf("lease session: %w", err)
		}
		if !until.IsZero() && !time.Now().Before(until) {
			return nil
		}
		start := time.Now()
		pctx, pcancel := context.WithTimeout(ctx, l.step())
		err = conn.Ping(pctx)
		pcancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("confirm lease session: %w", err)
		}
		l.confirm(start)
	}
}

// isTimeout reports whether err is the end of a wait (a deadline), not a
// failure of the session.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// acquire returns a dedicated connection holding the lock, trying every
// L/4, or an error once ctx ends.
func (l *Lease) acquire(ctx context.Context) (*pgx.Conn, error) {
	waiting := false
	for {
		conn, ok, err := l.try(ctx)
		switch {
		case ok:
			return conn, nil
		case err != nil && ctx.Err() == nil:
			l.log.Warn("relaygw lease: cannot try the lock", "holder", l.opts.Holder, "error", err)
		case err == nil && !waiting:
			waiting = true
			l.log.Info("relaygw lease held by another replica; standing by (not ready)", "holder", l.opts.Holder)
		}
		t := time.NewTimer(l.step())
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// try takes a connection out of the pool, tunes its session and tries the
// lock once. It keeps the connection only when the lock was taken.
func (l *Lease) try(ctx context.Context) (*pgx.Conn, bool, error) {
	tctx, cancel := context.WithTimeout(ctx, max(l.step(), time.Second))
	defer cancel()
	pc, err := l.opts.Pool.Acquire(tctx)
	if err != nil {
		return nil, false, fmt.Errorf("acquire a connection: %w", err)
	}
	conn := pc.Hijack()
	ok := false
	defer func() {
		if !ok {
			cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = conn.Close(cctx)
			ccancel()
		}
	}()
	// The server drops the session of a holder that vanished without
	// closing it after about 3L/4 (keepalives) or L (unacknowledged data).
	secs := strconv.FormatInt(int64((l.step()+time.Second-1)/time.Second), 10)
	settings := [][2]string{
		{"application_name", AppName + l.opts.Holder},
		{"tcp_keepalives_idle", secs},
		{"tcp_keepalives_interval", secs},
		{"tcp_keepalives_count", "2"},
		{"tcp_user_timeout", strconv.FormatInt(max(l.opts.TTL.Milliseconds(), 1000), 10)},
	}
	for _, s := range settings {
		if _, err := conn.Exec(tctx, `SELECT set_config($1, $2, false)`, s[0], s[1]); err != nil {
			return nil, false, fmt.Errorf("set %s on the lease session: %w", s[0], err)
		}
	}
	var locked bool
	if err := conn.QueryRow(tctx, `SELECT pg_try_advisory_lock($1)`, Key).Scan(&locked); err != nil {
		return nil, false, fmt.Errorf("try the lease lock: %w", err)
	}
	ok = locked
	return conn, locked, nil
}

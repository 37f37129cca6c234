// Package pglisten keeps one dedicated Postgres connection LISTENing on any
// number of channels and turns notifications into wake-ups for its
// subscribers. It is the one LISTEN loop of Serbero: services subscribe to
// the channels they care about and re-poll their tables when woken.
//
// A notification is a hint, never data: it may be lost while the
// connection is down and several coalesce into one wake-up. So:
//
//   - a subscriber is woken once the LISTEN for its channel is in place
//     (on the first connection, and whenever it subscribes later), so it
//     can poll once knowing that anything committed afterwards wakes it;
//   - after every reconnection every subscriber is woken, because it may
//     have missed notifications while the connection was down;
//   - a subscriber polls on its own schedule too (the fallback).
//
// The connection lives outside every pool (a LISTEN belongs to a session).
// It reconnects with a jittered exponential backoff (pkg/retry), pings the
// server when no notification came for PingInterval (a half-open TCP
// connection would otherwise wait forever), and closes when Run's context
// ends. See docs/architecture.md#shared-infrastructure.
package pglisten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/pkg/retry"
)

// Defaults of Options.
const (
	DefaultApplicationName = "serbero-listen"
	DefaultPingInterval    = 30 * time.Second
	DefaultInitialBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff      = 5 * time.Second
	DefaultConnectTimeout  = 10 * time.Second
)

// maxChannel is the longest channel name Postgres keeps (NAMEDATALEN - 1).
const maxChannel = 63

// Options configures a Listener.
type Options struct {
	// ConnConfig is how to connect (copied; e.g. pool.Config().ConnConfig).
	// Required.
	ConnConfig *pgx.ConnConfig
	// ApplicationName names the connection in pg_stat_activity; default
	// DefaultApplicationName.
	ApplicationName string
	// Logger receives reconnection warnings; nil discards them.
	Logger *slog.Logger
	// Clock drives the backoff and the ping interval; nil is the real clock.
	Clock clockwork.Clock
	// PingInterval, InitialBackoff, MaxBackoff and ConnectTimeout default
	// to the Default constants.
	PingInterval   time.Duration
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	ConnectTimeout time.Duration
}

// Listener is one LISTEN connection shared by its subscribers.
type Listener struct {
	cfg     *pgx.ConnConfig
	opts    Options
	log     *slog.Logger
	clock   clockwork.Clock
	ready   chan struct{}
	running atomic.Bool
	up      atomic.Bool

	mu        sync.Mutex
	subs      map[string]map[*Subscription]struct{}
	dirty     bool               // a channel was added since the last LISTEN pass
	interrupt context.CancelFunc // cancels the wait in progress, if any
	readyOnce sync.Once
}

// New returns a Listener; nothing connects until Run.
func New(opts Options) (*Listener, error) {
	if opts.ConnConfig == nil {
		return nil, errors.New("pglisten: ConnConfig is required")
	}
	cfg := opts.ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	name := opts.ApplicationName
	if name == "" {
		name = DefaultApplicationName
	}
	cfg.RuntimeParams["application_name"] = name
	// An interrupted or timed-out wait only sets a read deadline; the
	// connection stays usable (the default handler would cancel a query
	// that is not running and then close the connection).
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&opts.PingInterval, DefaultPingInterval)
	def(&opts.InitialBackoff, DefaultInitialBackoff)
	def(&opts.MaxBackoff, DefaultMaxBackoff)
	def(&opts.ConnectTimeout, DefaultConnectTimeout)
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := opts.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Listener{
		cfg: cfg, opts: opts, log: log.With("component", "pglisten"), clock: clock,
		ready: make(chan struct{}), subs: map[string]map[*Subscription]struct{}{},
	}, nil
}

// Subscription is one subscriber's wake-up channel.
type Subscription struct {
	l       *Listener
	channel string
	c       chan struct{}
}

// C receives a value when the subscriber should poll: a notification on its
// channel arrived, its LISTEN was (re)established, or the connection came
// back. Wake-ups coalesce (the channel holds at most one).
func (s *Subscription) C() <-chan struct{} { return s.c }

// Channel is the Postgres channel subscribed to.
func (s *Subscription) Channel() string { return s.channel }

// Close ends the subscription; C receives nothing more (a pending wake-up
// is dropped). The connection keeps listening on the channel until it
// reconnects (harmless).
func (s *Subscription) Close() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	delete(s.l.subs[s.channel], s)
	if len(s.l.subs[s.channel]) == 0 {
		delete(s.l.subs, s.channel)
	}
	select {
	case <-s.c:
	default:
	}
}

func (s *Subscription) wake() {
	select {
	case s.c <- struct{}{}:
	default:
	}
}

// ValidChannel checks a channel name: 1 to 63 bytes, no NUL. Channels are
// used exactly as given (case-sensitive, as pg_notify sees them).
func ValidChannel(channel string) error {
	switch {
	case channel == "":
		return errors.New("pglisten: empty channel name")
	case len(channel) > maxChannel:
		return fmt.Errorf("pglisten: channel name longer than %d bytes", maxChannel)
	case strings.IndexByte(channel, 0) >= 0:
		return errors.New("pglisten: channel name contains NUL")
	}
	return nil
}

// Subscribe adds a subscriber to channel, before or while Run runs. A new
// channel is LISTENed at once on a live connection; the subscriber is woken
// as soon as its channel is listened (at once when it already is).
func (l *Listener) Subscribe(channel string) (*Subscription, error) {
	if err := ValidChannel(channel); err != nil {
		return nil, err
	}
	s := &Subscription{l: l, channel: channel, c: make(chan struct{}, 1)}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.subs[channel] == nil {
		l.subs[channel] = map[*Subscription]struct{}{}
		l.dirty = true
		if l.interrupt != nil {
			l.interrupt()
		}
	}
	l.subs[channel][s] = struct{}{}
	if !l.dirty && l.up.Load() {
		s.wake() // the channel is already listened on the live connection
	}
	return s, nil
}

// Ready is closed once the connection first listens on every channel
// subscribed before it connected.
func (l *Listener) Ready() <-chan struct{} { return l.ready }

// Listening reports whether the connection is up and listening now.
func (l *Listener) Listening() bool { return l.up.Load() }

// Run keeps the connection until ctx ends, reconnecting after every
// failure, and returns nil then. It may be called once.
func (l *Listener) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return errors.New("pglisten: Run called twice")
	}
	b := retry.Exponential(l.opts.InitialBackoff, l.opts.MaxBackoff)
	for {
		err := l.session(ctx, b.Reset)
		l.up.Store(false)
		if ctx.Err() != nil {
			return nil //nolint:nilerr // a session error after cancellation is the shutdown itself, not a failure
		}
		wait := b.NextBackOff()
		l.log.Warn("listen connection lost; reconnecting", "error", err, "retry_in", wait.String())
		if !retry.Sleep(ctx, l.clock, wait) {
			return nil
		}
	}
}

// session is one connection's life: connect, LISTEN, wake everyone, then
// relay notifications until the connection fails or ctx ends.
func (l *Listener) session(ctx context.Context, connected func()) error {
	cctx, cancel := context.WithTimeout(ctx, l.opts.ConnectTimeout)
	conn, err := pgx.ConnectConfig(cctx, l.cfg)
	cancel()
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	listened := map[string]bool{}
	first := true
	for {
		added, err := l.listenPending(ctx, conn, listened)
		if err != nil {
			return err
		}
		if first {
			first = false
			l.up.Store(true)
			connected()
			l.readyOnce.Do(func() { close(l.ready) })
			l.wakeAll()
		} else {
			for _, ch := range added {
				l.wakeChannel(ch)
			}
		}

		n, err := l.wait(ctx, conn)
		switch {
		case n != nil:
			l.wakeChannel(n.Channel)
		case ctx.Err() != nil:
			return ctx.Err()
		case err == nil:
			// Interrupted by Subscribe: LISTEN the new channel.
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, l.opts.ConnectTimeout)
			err := conn.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return fmt.Errorf("wait for notification: %w", err)
		}
	}
}

// listenPending LISTENs every subscribed channel this connection is not
// listening on yet and returns them.
func (l *Listener) listenPending(ctx context.Context, conn *pgx.Conn, listened map[string]bool) ([]string, error) {
	l.mu.Lock()
	var todo []string
	for ch := range l.subs {
		if !listened[ch] {
			todo = append(todo, ch)
		}
	}
	l.dirty = false
	l.mu.Unlock()
	for _, ch := range todo {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ch}.Sanitize()); err != nil {
			return nil, fmt.Errorf("listen %s: %w", ch, err)
		}
		listened[ch] = true
	}
	return todo, nil
}

// wait waits for one notification, at most PingInterval. It returns
// (nil, nil) when Subscribe interrupted it, DeadlineExceeded when the
// interval passed.
func (l *Listener) wait(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wctx, cancel := clockwork.WithTimeout(ctx, l.clock, l.opts.PingInterval)
	defer cancel()
	interrupted := make(chan struct{})
	var once sync.Once
	l.mu.Lock()
	if l.dirty {
		l.mu.Unlock()
		return nil, nil
	}
	l.interrupt = func() {
		once.Do(func() { close(interrupted) })
		cancel()
	}
	l.mu.Unlock()
	n, err := conn.WaitForNotification(wctx)
	l.mu.Lock()
	l.interrupt = nil
	l.mu.Unlock()
	if n != nil {
		return n, nil
	}
	select {
	case <-interrupted:
		if ctx.Err() == nil && !conn.IsClosed() {
			return nil, nil
		}
	default:
	}
	if ctx.Err() == nil && wctx.Err() != nil && !conn.IsClosed() {
		return nil, context.DeadlineExceeded
	}
	return nil, err
}

func (l *Listener) wakeAll() {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, subs := range l.subs {
		for s := range subs {
			s.wake()
		}
	}
}

func (l *Listener) wakeChannel(channel string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for s := range l.subs[channel] {
		s.wake()
	}
}

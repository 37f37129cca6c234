package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

// conn is one relay's connection loop.
type conn struct {
	url  string
	pool *Pool

	mu             sync.Mutex
	relay          *relayconn.Conn // nil while disconnected
	connCtx        context.Context // ends when the current connection does
	subs           map[string]*subRunner
	connectedSince time.Time
	lastEventAt    time.Time
	failures       int64
	lastError      string
	lastNoticeLog  time.Time
	noticesMuted   int

	// lastRun is, per subscription key, closed when the latest runner has
	// returned: a new runner waits for its predecessor, so that one
	// subscription's calls for this relay never overlap.
	lastRun map[string]chan struct{}
}

type subRunner struct {
	cancel context.CancelFunc
	kick   chan struct{}
}

func (c *conn) current() *relayconn.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.relay
}

func (c *conn) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Status{
		URL: c.url, Connected: c.relay != nil, ConnectedSince: c.connectedSince, LastEventAt: c.lastEventAt,
		Failures: c.failures, LastError: c.lastError,
	}
}

func (c *conn) fail(err error) {
	msg := err.Error()
	c.mu.Lock()
	c.failures++
	c.lastError = msg
	c.mu.Unlock()
	if m := c.pool.opts.Metrics; m != nil {
		m.failures.WithLabelValues(c.url).Inc()
	}
}

func (c *conn) noteError(err error) {
	c.mu.Lock()
	c.lastError = err.Error()
	c.mu.Unlock()
}

// noticeEvery bounds how often a relay's NOTICEs are logged (a relay can
// send them by the thousand); all are counted.
const noticeEvery = 10 * time.Second

func (c *conn) notice(log *slog.Logger, n string) {
	if m := c.pool.opts.Metrics; m != nil {
		m.notices.WithLabelValues(c.url).Inc()
	}
	now := time.Now()
	c.mu.Lock()
	if now.Sub(c.lastNoticeLog) < noticeEvery {
		c.noticesMuted++
		c.mu.Unlock()
		return
	}
	muted := c.noticesMuted
	c.lastNoticeLog, c.noticesMuted = now, 0
	c.mu.Unlock()
	log.Info("relay notice", "notice", truncate(n, 200), "notices_not_logged", muted)
}

func (c *conn) dropped(r relayconn.DropReason) {
	if m := c.pool.opts.Metrics; m != nil {
		m.dropped.WithLabelValues(c.url, string(r)).Inc()
	}
}

// loop connects, subscribes everything, waits for the connection to drop,
// and starts again after a backoff, until ctx ends.
func (c *conn) loop(ctx context.Context) {
	log := c.pool.log.With("relay", c.url)
	backoff := c.pool.opts.InitialBackoff
	co := c.pool.opts.Conn
	co.OnNotice = func(n string) { c.notice(log, n) }
	co.OnDrop = c.dropped
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, c.pool.opts.ConnectTimeout)
		r, err := relayconn.Dial(cctx, c.url, co)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			c.fail(fmt.Errorf("connect: %w", err))
			log.Warn("relay connection failed; retrying", "error", err, "backoff", backoff.String())
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, c.pool.opts.MaxBackoff)
			continue
		}
		backoff = c.pool.opts.InitialBackoff
		connCtx, endConn := context.WithCancel(ctx)
		c.mu.Lock()
		c.relay = r
		c.connCtx = connCtx //nolint:fatcontext // derived from ctx (not from the previous c.connCtx) and ended by endConn before the next round
		c.connectedSince = time.Now()
		c.mu.Unlock()
		if m := c.pool.opts.Metrics; m != nil {
			m.connected.WithLabelValues(c.url).Set(1)
		}
		log.Info("relay connected")
		for _, spec := range c.pool.allSpecs() {
			c.startSub(spec)
		}

		select {
		case <-r.Done():
		case <-ctx.Done():
		}
		endConn()
		c.mu.Lock()
		c.relay = nil
		c.connCtx = nil
		for key, s := range c.subs {
			s.cancel()
			delete(c.subs, key)
		}
		c.mu.Unlock()
		cause := r.Err()
		r.Close()
		if m := c.pool.opts.Metrics; m != nil {
			m.connected.WithLabelValues(c.url).Set(0)
		}
		if ctx.Err() != nil {
			return
		}
		c.fail(fmt.Errorf("connection lost: %w", cause))
		log.Warn("relay connection lost; reconnecting", "error", cause, "backoff", backoff.String())
		if !sleep(ctx, jitter(backoff)) {
			return
		}
	}
}

// startSub runs spec on this connection if it is up (replacing a runner
// with the same key).
func (c *conn) startSub(spec Spec) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.relay == nil {
		return
	}
	if old, ok := c.subs[spec.Key]; ok {
		old.cancel()
	}
	ctx, cancel := context.WithCancel(c.connCtx)
	sr := &subRunner{cancel: cancel, kick: make(chan struct{}, 1)}
	c.subs[spec.Key] = sr
	r := c.relay
	prev, done := c.lastRun[spec.Key], make(chan struct{})
	c.lastRun[spec.Key] = done
	go func() {
		defer close(done)
		if prev != nil {
			<-prev // cancelled already (replaced or connection lost): ends soon
		}
		c.runSub(ctx, r, spec.Key, sr)
		c.mu.Lock()
		if c.lastRun[spec.Key] == done {
			delete(c.lastRun, spec.Key)
		}
		c.mu.Unlock()
	}()
}

func (c *conn) stopSub(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.subs[key]; ok {
		s.cancel()
		delete(c.subs, key)
	}
}

func (c *conn) kickSub(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.subs[key]; ok {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (c *conn) publish(ctx context.Context, ev nostr.Event) Result {
	r := c.current()
	if r == nil {
		return Result{URL: c.url, Outcome: NotConnected, Message: "not connected"}
	}
	pctx, cancel := context.WithTimeout(ctx, c.pool.opts.PublishTimeout)
	defer cancel()
	err := r.Publish(pctx, ev)
	var rej *relayconn.RejectedError
	switch {
	case err == nil:
		return Result{URL: c.url, Outcome: Accepted}
	case errors.As(err, &rej):
		return Result{URL: c.url, Outcome: Rejected, Message: truncate(rej.Reason, 300)}
	case errors.Is(err, relayconn.ErrConnectionClosed):
		return Result{URL: c.url, Outcome: NotConnected, Message: "connection closed before the relay answered"}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(pctx.Err(), context.DeadlineExceeded):
		return Result{URL: c.url, Outcome: TimedOut, Message: "no OK within the publish timeout"}
	default:
		return Result{URL: c.url, Outcome: NotConnected, Message: truncate(err.Error(), 300)}
	}
}

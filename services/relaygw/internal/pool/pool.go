// Package pool is relaygw's relay pool: one connection loop per configured
// relay, with its own reconnect (capped exponential backoff with jitter)
// and its own re-subscription, so that no event is lost across a
// reconnect.
//
// go-nostr's SimplePool is deliberately not used: on reconnect it rewrites
// every filter's since to "now", which silently loses events published while
// the connection was down (and every back-dated gift wrap). Here each
// subscription is a Spec whose Filters are rebuilt on every (re)subscribe,
// typically from a durable cursor (see Cursored), and whose Handle is
// called for every delivered event. A Handle error (a transient failure,
// such as the database being down) ends the subscription on that relay and
// re-subscribes after a backoff from the cursor, which did not advance: the
// event is delivered again.
//
// Publish sends an event to every relay at once and reports, per relay,
// accepted / rejected (with the relay's reason) / timed out / not connected.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/textcut"
)

// Outcome is what one relay did with one published event.
type Outcome int

// The publish outcomes.
const (
	Accepted Outcome = iota + 1
	Rejected
	TimedOut
	NotConnected
)

// String names the outcome (metric label values).
func (o Outcome) String() string {
	switch o {
	case Accepted:
		return "accepted"
	case Rejected:
		return "rejected"
	case TimedOut:
		return "timed_out"
	case NotConnected:
		return "not_connected"
	}
	return "unknown"
}

// Result is the outcome of publishing one event to one relay.
type Result struct {
	URL     string
	Outcome Outcome
	// Message is the relay's reason (rejected) or the local error.
	Message string
}

// AnyAccepted reports whether at least one relay accepted.
func AnyAccepted(rs []Result) bool {
	for _, r := range rs {
		if r.Outcome == Accepted {
			return true
		}
	}
	return false
}

// Spec is one subscription, kept open on every relay.
type Spec struct {
	// Key names the subscription (and its cursors); unique in the pool.
	Key string
	// Filters builds the REQ filters for one relay; it is called on every
	// (re)subscribe. An error retries later.
	Filters func(ctx context.Context, relayURL string) (nostr.Filters, error)
	// Handle processes one delivered event. It must be idempotent (the
	// same event may come from several relays or again after a
	// re-subscribe) and return an error only for transient failures: bad
	// events are dropped (and counted) by Handle itself.
	Handle func(ctx context.Context, relayURL string, ev *nostr.Event) error
	// HandleBatch, when set, is used instead of Handle: it gets the events
	// a relay delivered back to back (one or more, at most maxBatch), so a
	// handler can store them in one transaction. Same contract as Handle
	// for the whole batch.
	HandleBatch func(ctx context.Context, relayURL string, evs []*nostr.Event) error
	// EndOfStored, when set, is called once per (re)subscription on a
	// relay when that relay has sent all its stored events (EOSE), after
	// every one of them was handled. Until then a connection cut can leave
	// older stored events undelivered (relays send the newest first), so
	// a durable cursor must not move before it (see Cursored). An error
	// is treated as a Handle error. Filters, Handle(Batch) and EndOfStored
	// are never called concurrently for the same subscription and relay.
	EndOfStored func(ctx context.Context, relayURL string) error
}

// maxBatch bounds how many back-to-back events HandleBatch gets at once.
const maxBatch = 256

// Status is the health of one relay connection.
type Status struct {
	URL            string
	Connected      bool
	ConnectedSince time.Time
	LastEventAt    time.Time
	Failures       int64
	LastError      string
}

// Options configures a Pool.
type Options struct {
	// URLs are the relays.
	URLs []string
	// PublishTimeout bounds the wait for each relay's OK.
	PublishTimeout time.Duration
	// InitialBackoff is the first reconnect delay (default 250ms).
	InitialBackoff time.Duration
	// MaxBackoff caps the reconnect delay.
	MaxBackoff time.Duration
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration
	// Logger receives connection events (never event contents).
	Logger *slog.Logger
	// Metrics, if set, records relay health and publish outcomes.
	Metrics *Metrics
}

// Pool holds the relay connections.
type Pool struct {
	opts  Options
	log   *slog.Logger
	conns []*conn

	mu    sync.Mutex
	specs map[string]Spec
	seen  *seenSet
	ctx   context.Context // set by Run
}

// New builds a pool; Run connects it.
func New(opts Options) *Pool {
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = 250 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = time.Minute
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = 10 * time.Second
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Pool{opts: opts, log: opts.Logger, specs: map[string]Spec{}, seen: newSeenSet(50000)}
	for _, u := range opts.URLs {
		p.conns = append(p.conns, &conn{url: u, pool: p, subs: map[string]*subRunner{}, lastRun: map[string]chan struct{}{}})
	}
	if opts.Metrics != nil {
		for _, c := range p.conns {
			opts.Metrics.init(c.url)
		}
	}
	return p
}

// URLs returns the configured relay URLs.
func (p *Pool) URLs() []string { return p.opts.URLs }

// Run keeps every relay connected until ctx ends.
func (p *Pool) Run(ctx context.Context) {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loop(ctx)
		}()
	}
	wg.Wait()
}

// Subscribe adds (or replaces) a subscription on every relay, now on the
// connected ones and after every reconnect.
func (p *Pool) Subscribe(spec Spec) {
	p.mu.Lock()
	p.specs[spec.Key] = spec
	p.mu.Unlock()
	for _, c := range p.conns {
		c.startSub(spec)
	}
}

// Unsubscribe closes a subscription everywhere.
func (p *Pool) Unsubscribe(key string) {
	p.mu.Lock()
	delete(p.specs, key)
	p.mu.Unlock()
	for _, c := range p.conns {
		c.stopSub(key)
	}
}

// Resubscribe sends the subscription's REQ again on every connected relay
// with freshly built filters (for example after adding a chat channel).
func (p *Pool) Resubscribe(key string) {
	for _, c := range p.conns {
		c.kickSub(key)
	}
}

func (p *Pool) spec(key string) (Spec, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s, ok := p.specs[key]
	return s, ok
}

func (p *Pool) allSpecs() []Spec {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]Spec, 0, len(p.specs))
	for _, s := range p.specs {
		out = append(out, s)
	}
	return out
}

// Status reports every relay's health, in configuration order.
func (p *Pool) Status() []Status {
	out := make([]Status, 0, len(p.conns))
	for _, c := range p.conns {
		out = append(out, c.status())
	}
	return out
}

// Connected is the number of relays connected now.
func (p *Pool) Connected() int {
	n := 0
	for _, c := range p.conns {
		if c.current() != nil {
			n++
		}
	}
	return n
}

// Publish sends ev to every relay concurrently and returns one Result per
// relay, in configuration order.
func (p *Pool) Publish(ctx context.Context, ev nostr.Event) []Result {
	results := make([]Result, len(p.conns))
	var wg sync.WaitGroup
	for i, c := range p.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = c.publish(ctx, ev)
			if m := p.opts.Metrics; m != nil {
				m.published.WithLabelValues(c.url, results[i].Outcome.String()).Inc()
			}
		}()
	}
	wg.Wait()
	return results
}

// Query asks every connected relay for the stored events matching f and
// returns them deduplicated by id, waiting for each relay's EOSE (or the
// timeout). Events are returned as relays sent them: the caller verifies.
func (p *Pool) Query(ctx context.Context, f nostr.Filter, timeout time.Duration) []*nostr.Event {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var mu sync.Mutex
	seen := map[string]bool{}
	var out []*nostr.Event
	var wg sync.WaitGroup
	for _, c := range p.conns {
		r := c.current()
		if r == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs, err := r.QuerySync(ctx, f)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, e := range evs {
				if !seen[e.ID] {
					seen[e.ID] = true
					out = append(out, e)
				}
			}
		}()
	}
	wg.Wait()
	return out
}

// conn is one relay's connection loop.
type conn struct {
	url  string
	pool *Pool

	mu             sync.Mutex
	relay          *nostr.Relay // nil while disconnected
	connCtx        context.Context
	subs           map[string]*subRunner
	connectedSince time.Time
	lastEventAt    time.Time
	failures       int64
	lastError      string

	// lastRun is, per subscription key, closed when the latest runner has
	// returned: a new runner waits for its predecessor, so that one
	// subscription's calls for this relay never overlap.
	lastRun map[string]chan struct{}
}

type subRunner struct {
	cancel context.CancelFunc
	kick   chan struct{}
}

func (c *conn) current() *nostr.Relay {
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

// loop connects, subscribes everything, waits for the connection to drop,
// and starts again after a backoff, until ctx ends.
func (c *conn) loop(ctx context.Context) {
	log := c.pool.log.With("relay", c.url)
	backoff := c.pool.opts.InitialBackoff
	for ctx.Err() == nil {
		r := nostr.NewRelay(ctx, c.url, nostr.WithNoticeHandler(func(n string) {
			log.Info("relay notice", "notice", truncate(n, 200))
		}))
		r.AssumeValid = true // every handler verifies signatures itself
		cctx, cancel := context.WithTimeout(ctx, c.pool.opts.ConnectTimeout)
		err := r.Connect(cctx)
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
		c.mu.Lock()
		c.relay = r
		c.connCtx = r.Context()
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
		case <-r.Context().Done():
		case <-ctx.Done():
		}
		c.mu.Lock()
		c.relay = nil
		c.connCtx = nil
		for key, s := range c.subs {
			s.cancel()
			delete(c.subs, key)
		}
		c.mu.Unlock()
		if m := c.pool.opts.Metrics; m != nil {
			m.connected.WithLabelValues(c.url).Set(0)
		}
		// No r.Close(): the connection is already closed, or closes with
		// ctx (go-nostr's Close races its own connection goroutine).
		if ctx.Err() != nil {
			return
		}
		cause := context.Cause(r.Context())
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

var errKicked = errors.New("re-subscribe requested")

// runSub keeps one subscription open on one connection: subscribe, handle
// events; after a relay CLOSED, a handler error or a filter error, wait a
// backoff and subscribe again from freshly built filters.
func (c *conn) runSub(ctx context.Context, r *nostr.Relay, key string, sr *subRunner) {
	log := c.pool.log.With("relay", c.url, "subscription", key)
	backoff := c.pool.opts.InitialBackoff
	for ctx.Err() == nil {
		spec, ok := c.pool.spec(key)
		if !ok {
			return
		}
		err := c.subscribeOnce(ctx, r, spec, sr.kick)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errKicked) {
			backoff = c.pool.opts.InitialBackoff
			continue
		}
		if err != nil {
			c.noteError(fmt.Errorf("subscription %s: %w", key, err))
			log.Warn("subscription ended; re-subscribing", "error", err, "backoff", backoff.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-sr.kick:
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, c.pool.opts.MaxBackoff)
	}
}

func (c *conn) subscribeOnce(ctx context.Context, r *nostr.Relay, spec Spec, kick <-chan struct{}) error {
	filters, err := spec.Filters(ctx, c.url)
	if err != nil {
		return fmt.Errorf("build filters: %w", err)
	}
	if len(filters) == 0 { // nothing to watch yet
		select {
		case <-kick:
			return errKicked
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub, err := r.Subscribe(sctx, filters, nostr.WithLabel(spec.Key))
	if err != nil {
		return err
	}
	defer sub.Unsub()
	// go-nostr hands events over one at a time through an unbuffered
	// channel; a reader moves them into a buffer while the handler is busy
	// (storing the previous batch), so a burst is handled together. The
	// reader also forwards the EOSE, in order: go-nostr signals it only
	// once every stored event was taken from sub.Events, so the EOSE mark
	// comes after all of them in the buffer, and the handler sees it once
	// they are all handled.
	items := make(chan subItem, maxBatch)
	go func() {
		defer close(items)
		eose := sub.EndOfStoredEvents
		for {
			var it subItem
			select {
			case ev, ok := <-sub.Events:
				if !ok {
					return
				}
				it.ev = ev
			case <-eose:
				eose = nil
				it.eose = true
			}
			select {
			case items <- it:
			case <-sctx.Done():
				return
			}
		}
	}()
	m := c.pool.opts.Metrics
	for {
		select {
		case it, ok := <-items:
			if !ok {
				return context.Cause(sub.Context)
			}
			// Take whatever else is already waiting, so a burst is handled
			// (and stored) together rather than one event at a time; an
			// EOSE ends the batch.
			var batch []*nostr.Event
			eose, closed := it.eose, false
			if it.ev != nil {
				batch = append(batch, it.ev)
			}
		drain:
			for !eose && len(batch) < maxBatch {
				select {
				case more, ok := <-items:
					if !ok {
						closed = true
						break drain
					}
					if more.eose {
						eose = true
						break drain
					}
					batch = append(batch, more.ev)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				now := time.Now()
				c.mu.Lock()
				c.lastEventAt = now
				c.mu.Unlock()
				if m != nil {
					m.events.WithLabelValues(c.url).Add(float64(len(batch)))
					m.lastEvent.WithLabelValues(c.url).Set(float64(now.Unix()))
				}
				if err := c.handle(ctx, spec, batch); err != nil {
					return err
				}
			}
			if eose && spec.EndOfStored != nil {
				if err := spec.EndOfStored(ctx, c.url); err != nil {
					return fmt.Errorf("end of stored events: %w", err)
				}
			}
			if closed {
				return context.Cause(sub.Context)
			}
		case reason := <-sub.ClosedReason:
			return fmt.Errorf("closed by relay: %s", truncate(reason, 200))
		case <-kick:
			return errKicked
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// subItem is what a subscription's reader hands to its handler: one event,
// or the relay's EOSE.
type subItem struct {
	ev   *nostr.Event
	eose bool
}

// handle passes the not-yet-seen events of a batch to the spec's handler
// and marks them seen once handled.
func (c *conn) handle(ctx context.Context, spec Spec, batch []*nostr.Event) error {
	fresh := batch[:0:0]
	for _, ev := range batch {
		if !c.pool.seen.has(spec.Key, ev.ID) {
			fresh = append(fresh, ev)
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if spec.HandleBatch != nil {
		if err := spec.HandleBatch(ctx, c.url, fresh); err != nil {
			return fmt.Errorf("handle %d events from %s: %w", len(fresh), fresh[0].ID, err)
		}
	} else {
		for _, ev := range fresh {
			if err := spec.Handle(ctx, c.url, ev); err != nil {
				return fmt.Errorf("handle event %s: %w", ev.ID, err)
			}
			c.pool.seen.add(spec.Key, ev.ID)
		}
		return nil
	}
	for _, ev := range fresh {
		c.pool.seen.add(spec.Key, ev.ID)
	}
	return nil
}

func (c *conn) publish(ctx context.Context, ev nostr.Event) Result {
	r := c.current()
	if r == nil {
		return Result{URL: c.url, Outcome: NotConnected, Message: "not connected"}
	}
	pctx, cancel := context.WithTimeout(ctx, c.pool.opts.PublishTimeout)
	defer cancel()
	err := r.Publish(pctx, ev)
	switch {
	case err == nil && !r.IsConnected():
		// go-nostr returns nil when the connection drops before the OK.
		return Result{URL: c.url, Outcome: NotConnected, Message: "connection closed before the relay answered"}
	case err == nil:
		return Result{URL: c.url, Outcome: Accepted}
	case strings.HasPrefix(err.Error(), "msg: "):
		return Result{URL: c.url, Outcome: Rejected, Message: truncate(strings.TrimPrefix(err.Error(), "msg: "), 300)}
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(pctx.Err(), context.DeadlineExceeded):
		return Result{URL: c.url, Outcome: TimedOut, Message: "no OK within the publish timeout"}
	default:
		return Result{URL: c.url, Outcome: NotConnected, Message: truncate(err.Error(), 300)}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)))
}

// truncate bounds relay text (notices, refusals) to n characters, cut at a
// character boundary, with "…" when something was cut.
func truncate(s string, n int) string { return textcut.Ellipsis(s, n) }

// seenSet remembers recently handled event ids per subscription, so the
// same event from several relays is handled once (handlers still dedupe
// durably where it matters).
type seenSet struct {
	mu    sync.Mutex
	cap   int
	set   map[string]struct{}
	order []string
	next  int
}

func newSeenSet(capacity int) *seenSet {
	return &seenSet{cap: capacity, set: make(map[string]struct{}, capacity), order: make([]string, 0, capacity)}
}

func (s *seenSet) has(key, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[key+"/"+id]
	return ok
}

func (s *seenSet) add(key, id string) {
	k := key + "/" + id
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[k]; ok {
		return
	}
	if len(s.order) < s.cap {
		s.order = append(s.order, k)
	} else {
		delete(s.set, s.order[s.next])
		s.order[s.next] = k
		s.next = (s.next + 1) % s.cap
	}
	s.set[k] = struct{}{}
}

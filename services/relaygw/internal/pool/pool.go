// Package pool is relaygw's relay pool: one connection loop per configured
// relay, with its own reconnect (capped exponential backoff with jitter)
// and its own re-subscription, so that no event is lost across a
// reconnect. The rules it implements are written in docs/relaygw.md.
//
// Connections are pkg/mostro/relayconn websockets (bounded message size,
// buffers bounded in bytes, drops counted); go-nostr's Relay and
// SimplePool are not used: the first races with itself, and the second
// rewrites every filter's since to "now" on reconnect, which silently
// loses events published while the connection was down (and every
// back-dated gift wrap).
//
// Each subscription is a Spec whose Filters are rebuilt on every
// (re)subscribe, typically from a durable cursor (see Cursored), and sent
// as its own REQ, so one subscription's trouble (a CLOSED, an overflow, a
// handler error) never ends another's. A Spec with Page set reads the
// relay's stored events backwards in pages (until + limit), because relays
// answer at most a capped number of stored events per REQ, newest first;
// EndOfStored comes only once the whole window was read. A Handle error (a
// transient failure, such as the database being down) ends the
// subscription on that relay and re-subscribes after a backoff from the
// cursor, which did not advance: the event is delivered again.
//
// Publish sends an event to every relay at once and reports, per relay,
// accepted / rejected (with the relay's reason) / timed out / not connected.
package pool

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
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
	// relay when that relay has sent all its stored events of the window
	// (the EOSE of the last page), after every one of them was handled.
	// Until then a connection cut can leave older stored events
	// undelivered (relays send the newest first), so a durable cursor must
	// not move before it (see Cursored). An error is treated as a Handle
	// error. Filters, Handle(Batch) and EndOfStored are never called
	// concurrently for the same subscription and relay.
	EndOfStored func(ctx context.Context, relayURL string) error
	// Page, when positive, is the REQ limit, and the stored events are
	// read backwards page by page (same filter, until = the oldest event
	// so far, inclusive) until a page brings nothing new: relays cap their
	// answers below any limit we ask for, so a short page proves nothing.
	// Filters must then return exactly one filter.
	Page int
	// NoDedup: the pool passes every delivered event on, even one it
	// already handled for this subscription; Handle deduplicates itself
	// (it must not remember an event it refused for a reason that may
	// pass later, see the chat).
	NoDedup bool
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
	// Conn bounds each connection (read limit, buffers, keepalive); its
	// OnNotice and OnDrop are set by the pool. Zero: relayconn's defaults.
	Conn relayconn.Options
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
			evs, err := r.Query(ctx, nostr.Filters{f})
			if err != nil && len(evs) == 0 {
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

// Has reports whether a subscription with this key is in the pool.
func (p *Pool) Has(key string) bool {
	_, ok := p.spec(key)
	return ok
}

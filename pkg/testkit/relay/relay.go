package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fiatjaf/eventstore"
	"github.com/fiatjaf/khatru"
	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

// Match selects events for a fault rule. nil matches nothing.
type Match func(*nostr.Event) bool

// Any matches every event.
func Any(*nostr.Event) bool { return true }

// Kinds matches events of the given kinds.
func Kinds(kinds ...int) Match {
	return func(e *nostr.Event) bool { return slices.Contains(kinds, e.Kind) }
}

// IDs matches events with the given ids.
func IDs(ids ...string) Match {
	return func(e *nostr.Event) bool { return slices.Contains(ids, e.ID) }
}

// Authors matches events by the given pubkeys.
func Authors(pubkeys ...string) Match {
	return func(e *nostr.Event) bool { return slices.Contains(pubkeys, e.PubKey) }
}

// First matches only the first n events that m matches (then nothing).
func First(n int, m Match) Match {
	var count atomic.Int64
	return func(e *nostr.Event) bool {
		if m == nil || !m(e) {
			return false
		}
		return count.Add(1) <= int64(n)
	}
}

// Faults are the misbehaviours the relay applies. The zero value is a
// well-behaved relay. Set them with SetFaults; they apply from then on.
type Faults struct {
	// DropIncoming: accept matching events (OK true) but neither store nor
	// deliver them.
	DropIncoming Match
	// RejectIncoming: answer matching events with OK false and
	// RejectReason.
	RejectIncoming Match
	// RejectReason is the OK false reason ("blocked: test fault" if empty).
	RejectReason string
	// DropLive: do not deliver matching events to live subscribers.
	DropLive Match
	// DropStored: leave matching events out of stored-event answers.
	DropStored Match
	// Duplicate: deliver matching events twice (live and stored).
	Duplicate Match
	// Delay: deliver matching live events this late (DelayMatch nil means
	// every event).
	Delay time.Duration
	// DelayMatch selects the events Delay applies to.
	DelayMatch Match
	// StallIncoming: hold matching incoming events this long before
	// storing them and answering OK (a slow relay: publishers time out).
	StallIncoming time.Duration
	// StallMatch selects the events StallIncoming applies to (nil: all).
	StallMatch Match
	// RefuseREQ: answer a REQ with any filter it matches with CLOSED and
	// RefuseReason.
	RefuseREQ func(nostr.Filter) bool
	// RefuseReason is the CLOSED reason ("blocked: test fault" if empty).
	RefuseReason string
	// StallStored: when a REQ's stored answer (newest first) reaches a
	// matching event, send the events up to and including it, then
	// nothing more of that answer and no EOSE until the REQ ends (CLOSE,
	// DisconnectAll, Stop): a relay whose connection is cut partway
	// through its stored events, with the test choosing the moment of the
	// cut. Live deliveries to the REQ go on meanwhile. Use First to stall
	// only once.
	StallStored Match
}

// Subscription is one live REQ as the relay sees it.
type Subscription struct {
	// ID is the client's subscription id.
	ID string
	// Filters are the REQ's filters.
	Filters []nostr.Filter
}

// Options are a relay's fixed limits, as in a real relay's configuration.
// The zero value is khatru's defaults with no backlog cap.
type Options struct {
	// MaxStoredEvents caps the stored events answered to one REQ filter
	// (newest first; 0: no cap), as strfry, nostr-rs-relay and khatru
	// deployments do: a client reads a longer backlog only by paging
	// backwards with until.
	MaxStoredEvents int
	// MaxMessageLength is the largest client message the relay reads; a
	// larger one (a REQ with too many filters, say) makes it drop the
	// connection, as strfry and khatru do. 0: khatru's default, 512000.
	MaxMessageLength int64
}

// Relay is an in-process relay. Create it with New (then Start) or Start.
type Relay struct {
	kh   *khatru.Relay
	opts Options

	mu       sync.Mutex
	store    *memStore
	faults   Faults
	addr     string // fixed after the first start: restarts reuse the port
	srv      *http.Server
	ln       net.Listener
	conns    map[*trackedConn]struct{}
	subs     map[*liveSub]struct{}
	running  bool
	closed   bool
	changed  chan struct{} // closed and replaced on every state change
	received int
	wg       sync.WaitGroup
}

// liveSub is one client subscription (all filters of one REQ id).
type liveSub struct {
	ws      *khatru.WebSocket
	id      string
	filters []nostr.Filter
}

// New returns a relay that is not listening yet.
func New() *Relay { return NewWithOptions(Options{}) }

// NewWithOptions returns a relay with the given limits, not listening yet.
func NewWithOptions(o Options) *Relay {
	r := &Relay{
		opts:    o,
		store:   newMemStore(),
		conns:   map[*trackedConn]struct{}{},
		subs:    map[*liveSub]struct{}{},
		changed: make(chan struct{}),
	}
	kh := khatru.NewRelay()
	kh.Log = log.New(io.Discard, "", 0)
	kh.Info.Name = "serbero test relay"
	if o.MaxMessageLength > 0 {
		kh.MaxMessageSize = o.MaxMessageLength
	}
	kh.StoreEvent = append(kh.StoreEvent, r.storeEvent)
	kh.ReplaceEvent = append(kh.ReplaceEvent, r.replaceEvent)
	kh.DeleteEvent = append(kh.DeleteEvent, r.deleteEvent)
	kh.QueryEvents = append(kh.QueryEvents, r.queryEvents)
	kh.CountEvents = append(kh.CountEvents, r.countEvents)
	kh.RejectEvent = append(kh.RejectEvent, r.rejectEvent)
	kh.RejectFilter = append(kh.RejectFilter, r.rejectFilter)
	kh.OverwriteFilter = append(kh.OverwriteFilter, r.trackFilter)
	// Live deliveries are made by deliverLive, through the fault rules,
	// right after storing: the store hooks then answer "duplicate", which
	// khatru acknowledges with OK true and no broadcast of its own (its
	// broadcast reads its listener list without a lock, racing every REQ
	// and CLOSE).
	kh.PreventBroadcast = append(kh.PreventBroadcast, func(*khatru.WebSocket, *nostr.Event) bool { return true })
	r.kh = kh
	return r
}

// Start starts a relay on 127.0.0.1 with a random port and stops it at the
// end of the test.
func Start(t testing.TB) *Relay {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions is Start for a relay with the given limits.
func StartWithOptions(t testing.TB, o Options) *Relay {
	t.Helper()
	r := NewWithOptions(o)
	if err := r.Start(); err != nil {
		t.Fatalf("start test relay: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// Start listens (on a random 127.0.0.1 port the first time, on the same
// port after a Stop) and serves.
func (r *Relay) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("relay closed")
	}
	if r.running {
		return nil
	}
	addr := r.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the old listener's socket is still closing
	}
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	r.addr = ln.Addr().String()
	r.ln = ln
	r.srv = &http.Server{Handler: r.kh, ReadHeaderTimeout: 5 * time.Second}
	r.running = true
	srv := r.srv
	tl := &trackingListener{Listener: ln, r: r}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		_ = srv.Serve(tl)
	}()
	r.notifyLocked()
	return nil
}

// Stop takes the relay down: the listener closes and every client
// connection is cut. Stored events are kept; Start brings it back on the
// same port.
func (r *Relay) Stop() {
	r.mu.Lock()
	if !r.running {
		r.mu.Unlock()
		return
	}
	r.running = false
	srv := r.srv
	conns := r.takeConnsLocked()
	clear(r.subs) // every subscription dies with its connection
	r.notifyLocked()
	r.mu.Unlock()
	_ = srv.Close()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
	r.wg.Wait()
}

// Restart stops and starts the relay on the same port. With wipe, every
// stored event is lost, as with a relay that has no persistent store.
func (r *Relay) Restart(wipe bool) error {
	r.Stop()
	if wipe {
		r.Wipe()
	}
	return r.Start()
}

// Wipe forgets every stored event.
func (r *Relay) Wipe() {
	r.mu.Lock()
	r.store = newMemStore()
	r.notifyLocked()
	r.mu.Unlock()
}

// DisconnectAll cuts every client connection; the relay keeps listening.
func (r *Relay) DisconnectAll() {
	r.mu.Lock()
	conns := r.takeConnsLocked()
	clear(r.subs) // every subscription dies with its connection
	r.notifyLocked()
	r.mu.Unlock()
	for _, c := range conns {
		_ = c.Conn.Close()
	}
}

// Close stops the relay for good.
func (r *Relay) Close() {
	r.Stop()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
}

// URL is the relay's websocket URL (stable across restarts).
func (r *Relay) URL() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "ws://" + r.addr
}

// Running reports whether the relay is listening.
func (r *Relay) Running() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// SetFaults replaces the fault rules.
func (r *Relay) SetFaults(f Faults) {
	r.mu.Lock()
	r.faults = f
	r.mu.Unlock()
}

// ClearFaults makes the relay well-behaved again.
func (r *Relay) ClearFaults() { r.SetFaults(Faults{}) }

func (r *Relay) currentFaults() Faults {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.faults
}

// Inject stores evt without any check (it may be forged or malformed) and
// delivers it to matching live subscribers, as a misbehaving relay would.
func (r *Relay) Inject(evt nostr.Event) {
	r.mu.Lock()
	store := r.store
	r.mu.Unlock()
	e := evt
	_ = store.save(&e)
	r.notify()
	r.deliverLive(context.Background(), &e)
}

// Publish publishes evt to the relay as a client would (through every
// check and fault rule) and returns the relay's answer.
func (r *Relay) Publish(ctx context.Context, evt nostr.Event) error {
	c, err := relayconn.Dial(ctx, r.URL(), relayconn.Options{})
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Publish(ctx, evt)
}

// Events returns the stored events matching f, newest first (a zero Limit
// means all).
func (r *Relay) Events(f nostr.Filter) []*nostr.Event {
	r.mu.Lock()
	store := r.store
	r.mu.Unlock()
	return store.query(f)
}

// Received is how many EVENT messages with a valid id and signature the
// relay has been sent (accepted, dropped or rejected by a fault).
func (r *Relay) Received() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.received
}

// Connections is the number of open client connections.
func (r *Relay) Connections() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

// Subscriptions lists the live subscriptions.
func (r *Relay) Subscriptions() []Subscription {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Subscription, 0, len(r.subs))
	for s := range r.subs {
		out = append(out, Subscription{ID: s.id, Filters: slices.Clone(s.filters)})
	}
	return out
}

// WaitFor waits until cond holds (checked on every change of the relay's
// state) or fails the test after timeout.
func (r *Relay) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		ch := r.changed
		r.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("test relay: timed out after %s waiting for %s", timeout, what)
		}
	}
}

// WaitSubscribed waits until some live subscription has a filter for which
// match returns true, and returns that filter.
func (r *Relay) WaitSubscribed(t testing.TB, timeout time.Duration, match func(nostr.Filter) bool) nostr.Filter {
	t.Helper()
	var found nostr.Filter
	r.WaitFor(t, timeout, "a matching subscription", func() bool {
		for _, s := range r.Subscriptions() {
			for _, f := range s.Filters {
				if match(f) {
					found = f
					return true
				}
			}
		}
		return false
	})
	return found
}

// WaitEvents waits until the store holds at least n events matching f and
// returns them.
func (r *Relay) WaitEvents(t testing.TB, timeout time.Duration, f nostr.Filter, n int) []*nostr.Event {
	t.Helper()
	var evs []*nostr.Event
	r.WaitFor(t, timeout, fmt.Sprintf("%d stored events matching %v", n, f), func() bool {
		evs = r.Events(f)
		return len(evs) >= n
	})
	return evs
}

// WaitConnections waits until exactly n client connections are open.
func (r *Relay) WaitConnections(t testing.TB, timeout time.Duration, n int) {
	t.Helper()
	r.WaitFor(t, timeout, fmt.Sprintf("%d connections", n), func() bool { return r.Connections() == n })
}

func (r *Relay) notify() {
	r.mu.Lock()
	r.notifyLocked()
	r.mu.Unlock()
}

func (r *Relay) notifyLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

func (r *Relay) takeConnsLocked() []*trackedConn {
	out := make([]*trackedConn, 0, len(r.conns))
	for c := range r.conns {
		out = append(out, c)
	}
	clear(r.conns)
	return out
}

// --- khatru hooks ---

func (r *Relay) rejectEvent(_ context.Context, evt *nostr.Event) (bool, string) {
	r.mu.Lock()
	r.received++
	f := r.faults
	r.notifyLocked()
	r.mu.Unlock()
	if f.StallIncoming > 0 && (f.StallMatch == nil || f.StallMatch(evt)) {
		t := time.NewTimer(f.StallIncoming) // a slow relay, not a test wait
		<-t.C
	}
	if f.RejectIncoming != nil && f.RejectIncoming(evt) {
		reason := f.RejectReason
		if reason == "" {
			reason = "blocked: test fault"
		}
		return true, reason
	}
	return false, ""
}

// errDropped makes khatru answer OK true without storing or broadcasting
// (the store hooks store and deliver themselves).
var errDropped = eventstore.ErrDupEvent

func (r *Relay) storeEvent(_ context.Context, evt *nostr.Event) error {
	r.mu.Lock()
	store, f := r.store, r.faults
	r.mu.Unlock()
	if f.DropIncoming != nil && f.DropIncoming(evt) {
		return errDropped
	}
	e := *evt
	err := store.save(&e)
	r.notify()
	if err != nil {
		return err
	}
	r.deliverLive(context.Background(), &e)
	return errDropped
}

func (r *Relay) replaceEvent(_ context.Context, evt *nostr.Event) error {
	r.mu.Lock()
	store, f := r.store, r.faults
	r.mu.Unlock()
	if f.DropIncoming != nil && f.DropIncoming(evt) {
		return errDropped
	}
	e := *evt
	err := store.replace(&e)
	r.notify()
	if err != nil {
		return err
	}
	r.deliverLive(context.Background(), &e)
	return errDropped
}

func (r *Relay) deleteEvent(_ context.Context, evt *nostr.Event) error {
	r.mu.Lock()
	store := r.store
	r.mu.Unlock()
	store.delete(evt)
	r.notify()
	return nil
}

func (r *Relay) queryEvents(ctx context.Context, filter nostr.Filter) (chan *nostr.Event, error) {
	r.mu.Lock()
	store, f := r.store, r.faults
	r.mu.Unlock()
	fromREQ := isREQ(ctx)
	if n := r.opts.MaxStoredEvents; fromREQ && n > 0 && (filter.Limit == 0 || filter.Limit > n) && !filter.LimitZero {
		filter.Limit = n
	}
	evs := store.query(filter)
	ch := make(chan *nostr.Event, 2*len(evs))
	for _, e := range evs {
		if fromREQ && f.DropStored != nil && f.DropStored(e) {
			continue
		}
		ch <- e
		if fromREQ && f.Duplicate != nil && f.Duplicate(e) {
			ch <- e
		}
		if fromREQ && f.StallStored != nil && f.StallStored(e) {
			// khatru sends what is in ch, then waits for it to close
			// before the EOSE: close it only when the REQ ends.
			go func() {
				<-ctx.Done()
				close(ch)
			}()
			return ch, nil
		}
	}
	close(ch)
	return ch, nil
}

func (r *Relay) countEvents(_ context.Context, filter nostr.Filter) (int64, error) {
	return int64(len(r.Events(filter))), nil
}

func (r *Relay) rejectFilter(_ context.Context, filter nostr.Filter) (bool, string) {
	f := r.currentFaults()
	if f.RefuseREQ != nil && f.RefuseREQ(filter) {
		reason := f.RefuseReason
		if reason == "" {
			reason = "blocked: test fault"
		}
		return true, reason
	}
	return false, ""
}

// trackFilter registers each REQ filter for live delivery. It runs for
// every filter of every REQ (even limit 0) with the REQ's context, which
// ends on CLOSE, on a refused filter and on disconnect.
func (r *Relay) trackFilter(ctx context.Context, filter *nostr.Filter) {
	ws := khatru.GetConnection(ctx)
	id, ok := subscriptionID(ctx)
	if ws == nil || !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.subs {
		if s.ws == ws && s.id == id {
			s.filters = append(s.filters, *filter)
			r.notifyLocked()
			return
		}
	}
	s := &liveSub{ws: ws, id: id, filters: []nostr.Filter{*filter}}
	r.subs[s] = struct{}{}
	r.notifyLocked()
	go func() {
		<-ctx.Done()
		r.mu.Lock()
		delete(r.subs, s)
		r.notifyLocked()
		r.mu.Unlock()
	}()
}

// deliverLive sends a stored event to every matching live subscription,
// through the fault rules.
func (r *Relay) deliverLive(_ context.Context, evt *nostr.Event) {
	r.mu.Lock()
	f := r.faults
	var targets []*liveSub
	for s := range r.subs {
		for _, flt := range s.filters {
			if flt.Matches(evt) {
				targets = append(targets, s)
				break
			}
		}
	}
	r.mu.Unlock()
	if f.DropLive != nil && f.DropLive(evt) {
		return
	}
	copies := 1
	if f.Duplicate != nil && f.Duplicate(evt) {
		copies = 2
	}
	e := *evt
	send := func() {
		for _, s := range targets {
			id := s.id
			for range copies {
				_ = s.ws.WriteJSON(nostr.EventEnvelope{SubscriptionID: &id, Event: e})
			}
		}
	}
	if f.Delay > 0 && (f.DelayMatch == nil || f.DelayMatch(evt)) {
		time.AfterFunc(f.Delay, send)
		return
	}
	send()
}

// isREQ reports whether a query comes from a client's REQ (not from
// khatru's own deletion checks).
func isREQ(ctx context.Context) bool {
	_, ok := subscriptionID(ctx)
	return ok
}

func subscriptionID(ctx context.Context) (id string, ok bool) {
	defer func() {
		if recover() != nil {
			id, ok = "", false
		}
	}()
	return khatru.GetSubscriptionID(ctx), true
}

// --- connection tracking (so Stop and DisconnectAll can cut websockets,
// which http.Server.Close does not do once they are hijacked) ---

type trackingListener struct {
	net.Listener
	r *Relay
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, r: l.r}
	l.r.mu.Lock()
	if !l.r.running {
		l.r.mu.Unlock()
		_ = c.Close()
		return tc, nil
	}
	l.r.conns[tc] = struct{}{}
	l.r.notifyLocked()
	l.r.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	r    *Relay
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.r.mu.Lock()
		if _, ok := c.r.conns[c]; ok {
			delete(c.r.conns, c)
			c.r.notifyLocked()
		}
		c.r.mu.Unlock()
	})
	return c.Conn.Close()
}

// Package relayconn is Serbero's NIP-01 client for one relay connection:
// REQ / EVENT / EOSE / OK / CLOSED / NOTICE / CLOSE over a websocket of
// github.com/coder/websocket. go-nostr stays the library of events,
// filters, signatures and encryption; its Relay type is not used, because
// its connection code races with itself (its close runs against its writer
// and connect goroutines) and it buffers whatever a relay sends.
//
// One Conn is one websocket with one reader goroutine (which dispatches
// every message) and one keepalive goroutine (a ping every PingInterval;
// a missing pong ends the connection). Writes may come from any
// goroutine. Nothing a relay sends is trusted:
//
//   - a websocket message larger than ReadLimit is read through and
//     dropped, never buffered (DropOversized); the connection stays up;
//   - a message that is not a NIP-01 relay message is dropped
//     (DropMalformed), as is an event for no open subscription
//     (DropUnknownSubscription) or one that matches none of its
//     subscription's filters (DropUnrequested);
//   - every subscription holds at most SubscriptionBuffer bytes of events
//     not yet taken, and the connection at most ConnectionBuffer bytes
//     over all of them; the subscription whose event does not fit ends
//     with ErrOverflow (DropOverflow), so its owner re-subscribes from its
//     durable position instead of losing events silently.
//
// Events are not verified here (no id or signature check): callers verify
// what they use. Subscription.Take hands events and the EOSE mark over in
// the order the relay sent them.
package relayconn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
)

// Defaults of Options.
const (
	// DefaultReadLimit is the largest websocket message read, in bytes. The
	// largest legitimate message is an EVENT carrying one NIP-44 payload
	// (a gift wrap, a Mostro v2 message, a chat line): NIP-44 v2 caps the
	// plaintext at 65,535 bytes, so its base64 payload is at most 87,472
	// characters; the id, pubkey, signature, a few tags and the envelope
	// add well under 4 KiB. 128 KiB leaves room for that and is the message
	// limit common relays apply themselves.
	DefaultReadLimit = 128 << 10
	// DefaultSubscriptionBuffer bounds the bytes of events one subscription
	// holds before its owner takes them: a page of 100 chat lines of the
	// largest accepted size (64 KiB) fits.
	DefaultSubscriptionBuffer = 8 << 20
	// DefaultConnectionBuffer bounds the bytes held over all subscriptions
	// of one connection.
	DefaultConnectionBuffer = 32 << 20
	// DefaultPingInterval is the keepalive period; a pong must come within
	// it.
	DefaultPingInterval = 30 * time.Second
	// DefaultWriteTimeout bounds a write whose context has no deadline.
	DefaultWriteTimeout = 10 * time.Second
)

// DropReason says why a relay's message was dropped (a metric label).
type DropReason string

// The drop reasons.
const (
	// DropOversized: a websocket message above the read limit.
	DropOversized DropReason = "oversized"
	// DropMalformed: not a NIP-01 relay message (or an event that is not
	// an event object).
	DropMalformed DropReason = "malformed"
	// DropUnknownSubscription: an event or EOSE for no open subscription.
	DropUnknownSubscription DropReason = "unknown_subscription"
	// DropUnrequested: an event that matches none of the subscription's
	// filters.
	DropUnrequested DropReason = "unrequested"
	// DropOverflow: an event that did not fit its subscription's or the
	// connection's buffer; the subscription ends with ErrOverflow.
	DropOverflow DropReason = "overflow"
)

// DropReasons lists every DropReason (for pre-registering metric series).
func DropReasons() []DropReason {
	return []DropReason{DropOversized, DropMalformed, DropUnknownSubscription, DropUnrequested, DropOverflow}
}

// Options configures a connection. The zero value uses the defaults.
type Options struct {
	// ReadLimit is the largest websocket message read (DefaultReadLimit).
	ReadLimit int64
	// SubscriptionBuffer bounds one subscription's untaken events, in bytes
	// of their messages (DefaultSubscriptionBuffer).
	SubscriptionBuffer int64
	// ConnectionBuffer bounds the untaken events of all subscriptions
	// (DefaultConnectionBuffer).
	ConnectionBuffer int64
	// PingInterval is the keepalive period (DefaultPingInterval).
	PingInterval time.Duration
	// OnNotice, if set, receives every NOTICE (called from the reader: it
	// must not block).
	OnNotice func(notice string)
	// OnDrop, if set, is called for every dropped message (from the
	// reader: it must not block).
	OnDrop func(reason DropReason)
}

func (o *Options) defaults() {
	if o.ReadLimit <= 0 {
		o.ReadLimit = DefaultReadLimit
	}
	if o.SubscriptionBuffer <= 0 {
		o.SubscriptionBuffer = DefaultSubscriptionBuffer
	}
	if o.ConnectionBuffer <= 0 {
		o.ConnectionBuffer = DefaultConnectionBuffer
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
}

// Errors.
var (
	// ErrConnectionClosed: the connection ended (errors.Is; the cause is
	// wrapped too).
	ErrConnectionClosed = errors.New("relay connection closed")
	// ErrOverflow: the subscription's events did not fit its buffer.
	ErrOverflow = errors.New("subscription buffer full: events dropped")
	// ErrUnsubscribed: the subscription was closed by its owner.
	ErrUnsubscribed = errors.New("subscription closed")
)

// ClosedError is a relay's CLOSED answer to a REQ.
type ClosedError struct {
	// Reason is the relay's message (may be empty).
	Reason string
}

func (e *ClosedError) Error() string { return "closed by relay: " + e.Reason }

// RejectedError is a relay's OK false answer to an EVENT.
type RejectedError struct {
	// Reason is the relay's message (may be empty).
	Reason string
}

func (e *RejectedError) Error() string { return "rejected by relay: " + e.Reason }

// Conn is one websocket connection to a relay.
type Conn struct {
	url string
	ws  *websocket.Conn
	o   Options

	done     chan struct{} // closed when the reader has ended
	stopPing chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	cause    error
	subs     map[string]*Subscription
	oks      map[string][]chan okResult
	buffered int64 // bytes held over all subscriptions

	nextID atomic.Int64
}

type okResult struct {
	ok     bool
	reason string
}

// Dial opens a connection to url; ctx bounds the handshake only.
func Dial(ctx context.Context, url string, o Options) (*Conn, error) {
	o.defaults()
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	// The limit is applied per message by the reader, which drops an
	// oversized message instead of closing the connection.
	ws.SetReadLimit(-1)
	c := &Conn{
		url: url, ws: ws, o: o, done: make(chan struct{}), stopPing: make(chan struct{}),
		subs: map[string]*Subscription{}, oks: map[string][]chan okResult{},
	}
	c.wg.Add(2)
	go c.readLoop()
	go c.pingLoop()
	return c, nil
}

// URL is the relay's URL as dialled.
func (c *Conn) URL() string { return c.url }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is up).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cause
}

// Close ends the connection (no close handshake) and waits for its
// goroutines. Idempotent.
func (c *Conn) Close() {
	c.end(errors.New("closed by client"))
	c.wg.Wait()
}

// end records the cause (first one wins) and cuts the websocket; the
// reader then fails every subscription and pending publish.
func (c *Conn) end(cause error) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = cause
	}
	c.mu.Unlock()
	_ = c.ws.CloseNow()
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrConnectionClosed, c.cause)
}

func (c *Conn) pingLoop() {
	defer c.wg.Done()
	t := time.NewTicker(c.o.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.o.PingInterval)
		err := c.ws.Ping(ctx)
		cancel()
		if err != nil {
			c.end(fmt.Errorf("keepalive: %w", err))
			return
		}
	}
}

func (c *Conn) readLoop() {
	defer c.wg.Done()
	var err error
	for {
		var msg []byte
		msg, err = c.readMessage()
		if errors.Is(err, errTooBig) {
			c.drop(DropOversized)
			continue
		}
		if err != nil {
			break
		}
		c.dispatch(msg)
	}
	c.mu.Lock()
	if c.cause == nil {
		c.cause = fmt.Errorf("read: %w", err)
	}
	subs, oks := c.subs, c.oks
	c.subs, c.oks = map[string]*Subscription{}, map[string][]chan okResult{}
	c.mu.Unlock()
	_ = c.ws.CloseNow()
	cerr := c.closedErr()
	for _, s := range subs {
		s.finish(cerr)
	}
	for _, ws := range oks {
		for _, w := range ws {
			close(w)
		}
	}
	close(c.done)
}

var errTooBig = errors.New("message above the read limit")

// readMessage reads one websocket message of at most ReadLimit bytes; a
// larger one is read through (discarded) and reported as errTooBig.
func (c *Conn) readMessage() ([]byte, error) {
	typ, r, err := c.ws.Reader(context.Background())
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(r, c.o.ReadLimit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > c.o.ReadLimit {
		if _, err := io.Copy(io.Discard, r); err != nil {
			return nil, err
		}
		return nil, errTooBig
	}
	if typ != websocket.MessageText {
		return []byte{}, nil // NIP-01 is text: dispatched as malformed
	}
	return b, nil
}

func (c *Conn) drop(r DropReason) {
	if c.o.OnDrop != nil {
		c.o.OnDrop(r)
	}
}

// dispatch handles one relay message.
func (c *Conn) dispatch(msg []byte) {
	m, err := ParseMessage(msg)
	if err != nil {
		c.drop(DropMalformed)
		return
	}
	switch m.Label {
	case "EVENT":
		s := c.sub(m.SubscriptionID)
		if s == nil {
			c.drop(DropUnknownSubscription)
			return
		}
		if !s.filters.Match(m.Event) {
			c.drop(DropUnrequested)
			return
		}
		c.push(s, Item{Event: m.Event}, int64(len(msg)))
	case "EOSE":
		s := c.sub(m.SubscriptionID)
		if s == nil {
			c.drop(DropUnknownSubscription)
			return
		}
		c.push(s, Item{EOSE: true}, 0)
	case "CLOSED":
		c.mu.Lock()
		s := c.subs[m.SubscriptionID]
		delete(c.subs, m.SubscriptionID)
		c.mu.Unlock()
		if s != nil {
			s.finish(&ClosedError{Reason: m.Message})
		}
	case "OK":
		c.mu.Lock()
		ws := c.oks[m.EventID]
		delete(c.oks, m.EventID)
		c.mu.Unlock()
		for _, w := range ws {
			w <- okResult{ok: m.OK, reason: m.Message}
		}
	case "NOTICE":
		if c.o.OnNotice != nil {
			c.o.OnNotice(m.Message)
		}
	}
}

func (c *Conn) sub(id string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[id]
}

// push queues an item on s, or ends s with ErrOverflow when it does not
// fit its buffer or the connection's.
func (c *Conn) push(s *Subscription, it Item, size int64) {
	c.mu.Lock()
	fits := c.buffered+size <= c.o.ConnectionBuffer
	if fits {
		c.buffered += size
	}
	c.mu.Unlock()
	if fits && s.add(it, size, c.o.SubscriptionBuffer) {
		return
	}
	if fits {
		c.release(size)
	}
	if s.ended() {
		return // closed meanwhile: nothing is lost that its owner wants
	}
	c.drop(DropOverflow)
	c.mu.Lock()
	if c.subs[s.id] == s {
		delete(c.subs, s.id)
	}
	c.mu.Unlock()
	if s.finish(ErrOverflow) {
		// Not from the reader itself: a write must never hold up reads.
		go c.sendClose(s.id)
	}
}

func (c *Conn) release(size int64) {
	if size == 0 {
		return
	}
	c.mu.Lock()
	c.buffered -= size
	c.mu.Unlock()
}

func (c *Conn) write(ctx context.Context, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultWriteTimeout)
		defer cancel()
	}
	select {
	case <-c.done:
		return c.closedErr()
	default:
	}
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		select {
		case <-c.done:
			return c.closedErr()
		default:
		}
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

func (c *Conn) sendClose(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), DefaultWriteTimeout)
	defer cancel()
	_ = c.write(ctx, []any{"CLOSE", id})
}

// Subscribe sends a REQ with filters; label (shortened to 40 bytes)
// prefixes the subscription id. ctx bounds the write only: the
// subscription lasts until Close, a CLOSED, an overflow or the end of the
// connection.
func (c *Conn) Subscribe(ctx context.Context, filters nostr.Filters, label string) (*Subscription, error) {
	if len(filters) == 0 {
		return nil, errors.New("subscribe: no filters")
	}
	if len(label) > 40 {
		label = label[:40]
	}
	id := label + ":" + strconv.FormatInt(c.nextID.Add(1), 10)
	s := &Subscription{c: c, id: id, filters: filters, wake: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return nil, c.closedErr()
	}
	c.subs[id] = s
	c.mu.Unlock()
	msg := make([]any, 0, 2+len(filters))
	msg = append(msg, "REQ", id)
	for _, f := range filters {
		msg = append(msg, f)
	}
	if err := c.write(ctx, msg); err != nil {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		s.finish(err)
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

// Publish sends ev and waits for the relay's OK: nil when accepted, a
// *RejectedError when refused, an ErrConnectionClosed error when the
// connection ended first, or the context's error.
func (c *Conn) Publish(ctx context.Context, ev nostr.Event) error {
	w := make(chan okResult, 1)
	c.mu.Lock()
	if c.cause != nil {
		c.mu.Unlock()
		return c.closedErr()
	}
	c.oks[ev.ID] = append(c.oks[ev.ID], w)
	c.mu.Unlock()
	forget := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		ws := c.oks[ev.ID]
		for i, x := range ws {
			if x == w {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(c.oks, ev.ID)
		} else {
			c.oks[ev.ID] = ws
		}
	}
	if err := c.write(ctx, []any{"EVENT", ev}); err != nil {
		forget()
		return fmt.Errorf("publish %s: %w", ev.ID, err)
	}
	select {
	case r, ok := <-w:
		if !ok {
			return c.closedErr()
		}
		if !r.ok {
			return &RejectedError{Reason: r.reason}
		}
		return nil
	case <-ctx.Done():
		forget()
		return ctx.Err()
	}
}

// Query subscribes with filters, collects the stored events until the EOSE
// and closes the subscription.
func (c *Conn) Query(ctx context.Context, filters nostr.Filters) ([]*nostr.Event, error) {
	s, err := c.Subscribe(ctx, filters, "query")
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []*nostr.Event
	for {
		select {
		case <-ctx.Done():
			return out, ctx.Err()
		case <-s.Wake():
		}
		items, err := s.Take(256)
		for _, it := range items {
			if it.EOSE {
				return out, nil
			}
			out = append(out, it.Event)
		}
		if err != nil {
			return out, err
		}
	}
}

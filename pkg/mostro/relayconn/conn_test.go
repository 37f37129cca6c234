package relayconn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

const wait = 10 * time.Second

// peer is the relay side of one test connection, driven by the test.
type peer struct {
	ws   *websocket.Conn
	in   chan []json.RawMessage // every client message
	done chan struct{}
}

func (p *peer) send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	p.sendRaw(t, b)
}

func (p *peer) sendRaw(t testing.TB, b []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, p.ws.Write(ctx, websocket.MessageText, b))
}

// next returns the next client message with the given label.
func (p *peer) next(t testing.TB, label string) []json.RawMessage {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m := <-p.in:
			var l string
			require.NoError(t, json.Unmarshal(m[0], &l))
			if l == label {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s from the client", label)
		}
	}
}

// reqID waits for a REQ and returns its subscription id.
func (p *peer) reqID(t testing.TB) string {
	t.Helper()
	var id string
	require.NoError(t, json.Unmarshal(p.next(t, "REQ")[1], &id))
	return id
}

// server is a scripted relay: each accepted connection is handed to the
// test on conns.
type server struct {
	srv   *httptest.Server
	conns chan *peer
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{conns: make(chan *peer, 4)}
	var wg sync.WaitGroup
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		ws.SetReadLimit(1 << 20)
		p := &peer{ws: ws, in: make(chan []json.RawMessage, 1024), done: make(chan struct{})}
		s.conns <- p
		wg.Add(1)
		defer wg.Done()
		defer close(p.done)
		for {
			_, b, err := ws.Read(context.Background())
			if err != nil {
				return
			}
			var m []json.RawMessage
			if json.Unmarshal(b, &m) == nil && len(m) > 0 {
				select {
				case p.in <- m:
				default:
				}
			}
		}
	}))
	t.Cleanup(func() {
		s.srv.CloseClientConnections()
		s.srv.Close()
		wg.Wait()
	})
	return s
}

func (s *server) url() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") }

func (s *server) accept(t testing.TB) *peer {
	t.Helper()
	select {
	case p := <-s.conns:
		t.Cleanup(func() { _ = p.ws.CloseNow() })
		return p
	case <-time.After(wait):
		t.Fatal("no connection")
		return nil
	}
}

// drops counts OnDrop calls by reason.
type drops struct {
	mu sync.Mutex
	n  map[relayconn.DropReason]int
}

func (d *drops) add(r relayconn.DropReason) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.n == nil {
		d.n = map[relayconn.DropReason]int{}
	}
	d.n[r]++
}

func (d *drops) get(r relayconn.DropReason) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.n[r]
}

func dial(t *testing.T, s *server, o relayconn.Options) (*relayconn.Conn, *peer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := relayconn.Dial(ctx, s.url(), o)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, s.accept(t)
}

// takeAll takes items until n events and (if eose) the EOSE have come.
func takeAll(t *testing.T, sub *relayconn.Subscription, n int, eose bool) []*nostr.Event {
	t.Helper()
	var evs []*nostr.Event
	gotEOSE := false
	deadline := time.After(wait)
	for len(evs) < n || (eose && !gotEOSE) {
		select {
		case <-sub.Wake():
		case <-deadline:
			t.Fatalf("got %d of %d events (eose %v)", len(evs), n, gotEOSE)
		}
		items, err := sub.Take(1000)
		require.NoError(t, err)
		for _, it := range items {
			if it.EOSE {
				require.False(t, gotEOSE, "one EOSE")
				require.Len(t, evs, n, "the EOSE comes after the stored events")
				gotEOSE = true
				continue
			}
			evs = append(evs, it.Event)
		}
	}
	return evs
}

// subEnd waits for the subscription to end and returns why.
func subEnd(t *testing.T, sub *relayconn.Subscription) error {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case <-sub.Wake():
		case <-deadline:
			t.Fatal("the subscription did not end")
		}
		items, err := sub.Take(1 << 20)
		if len(items) == 0 && err != nil {
			return err
		}
	}
}

func TestSubscribeDeliversInRelayOrder(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, p := dial(t, s, relayconn.Options{})
	f := nostr.Filter{Kinds: []int{1}}
	sub, err := c.Subscribe(context.Background(), nostr.Filters{f}, "notes")
	require.NoError(t, err)
	id := p.reqID(t)
	require.Equal(t, sub.ID(), id)
	var sent []string
	for i := range 3 {
		e := signedNote(t, fmt.Sprint(i))
		sent = append(sent, e.ID)
		p.send(t, []any{"EVENT", id, e})
	}
	p.send(t, []any{"EOSE", id})
	live := signedNote(t, "live")
	p.send(t, []any{"EVENT", id, live})
	evs := takeAll(t, sub, 3, true)
	got := []string{evs[0].ID, evs[1].ID, evs[2].ID}
	require.Equal(t, sent, got, "events arrive in the order the relay sent them")
	require.Equal(t, live.ID, takeAll(t, sub, 1, false)[0].ID)

	sub.Close()
	var closed string
	require.NoError(t, json.Unmarshal(p.next(t, "CLOSE")[1], &closed))
	require.Equal(t, id, closed)
	require.ErrorIs(t, subEnd(t, sub), relayconn.ErrUnsubscribed)
}

func TestPublish(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, p := dial(t, s, relayconn.Options{})
	ctx := context.Background()

	ok := signedNote(t, "ok")
	errs := make(chan error, 1)
	go func() { errs <- c.Publish(ctx, ok) }()
	m := p.next(t, "EVENT")
	var got nostr.Event
	require.NoError(t, json.Unmarshal(m[1], &got))
	require.Equal(t, ok.ID, got.ID)
	p.send(t, []any{"OK", ok.ID, true, ""})
	require.NoError(t, <-errs)

	bad := signedNote(t, "bad")
	go func() { errs <- c.Publish(ctx, bad) }()
	p.next(t, "EVENT")
	p.send(t, []any{"OK", bad.ID, false, "blocked: test"})
	var rej *relayconn.RejectedError
	require.ErrorAs(t, <-errs, &rej)
	require.Equal(t, "blocked: test", rej.Reason)

	t.Run("Timeout", func(t *testing.T) {
		tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		require.ErrorIs(t, c.Publish(tctx, signedNote(t, "slow")), context.DeadlineExceeded)
	})

	t.Run("ConnectionLost", func(t *testing.T) {
		lost := signedNote(t, "lost")
		go func() { errs <- c.Publish(ctx, lost) }()
		p.next(t, "EVENT")
		_ = p.ws.CloseNow()
		require.ErrorIs(t, <-errs, relayconn.ErrConnectionClosed)
		select {
		case <-c.Done():
		case <-time.After(wait):
			t.Fatal("the connection did not end")
		}
		require.Error(t, c.Err())
		require.ErrorIs(t, c.Publish(ctx, lost), relayconn.ErrConnectionClosed)
		_, err := c.Subscribe(ctx, nostr.Filters{{Kinds: []int{1}}}, "late")
		require.ErrorIs(t, err, relayconn.ErrConnectionClosed)
	})
}

// A message above the read limit is read through and dropped without
// buffering it; the connection and its subscriptions go on.
func TestOversizedMessageIsDropped(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var d drops
	c, p := dial(t, s, relayconn.Options{OnDrop: d.add})
	sub, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, "big")
	require.NoError(t, err)
	id := p.reqID(t)
	huge := signedNote(t, strings.Repeat("x", relayconn.DefaultReadLimit))
	p.send(t, []any{"EVENT", id, huge})
	small := signedNote(t, "small")
	p.send(t, []any{"EVENT", id, small})
	p.send(t, []any{"EOSE", id})
	evs := takeAll(t, sub, 1, true)
	require.Equal(t, small.ID, evs[0].ID)
	require.Equal(t, 1, d.get(relayconn.DropOversized))
	select {
	case <-c.Done():
		t.Fatal("an oversized message must not end the connection")
	default:
	}
}

// What a relay must not send is dropped and counted: garbage, events for
// no subscription, events the filters do not ask for.
func TestHostileMessagesAreDropped(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var d drops
	var notices []string
	var mu sync.Mutex
	c, p := dial(t, s, relayconn.Options{OnDrop: d.add, OnNotice: func(n string) {
		mu.Lock()
		notices = append(notices, n)
		mu.Unlock()
	}})
	sub, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, "h")
	require.NoError(t, err)
	id := p.reqID(t)
	p.sendRaw(t, []byte(`not json`))
	p.sendRaw(t, []byte(`["EVENT","`+id+`","not an event"]`))
	p.send(t, []any{"EVENT", "nobody:1", signedNote(t, "stray")})
	other := signedNote(t, "kind 7")
	other.Kind = 7
	p.send(t, []any{"EVENT", id, other})
	p.send(t, []any{"NOTICE", "be nice"})
	good := signedNote(t, "good")
	p.send(t, []any{"EVENT", id, good})
	p.send(t, []any{"EOSE", id})
	require.Equal(t, good.ID, takeAll(t, sub, 1, true)[0].ID)
	require.Equal(t, 2, d.get(relayconn.DropMalformed))
	require.Equal(t, 1, d.get(relayconn.DropUnknownSubscription))
	require.Equal(t, 1, d.get(relayconn.DropUnrequested))
	mu.Lock()
	require.Equal(t, []string{"be nice"}, notices)
	mu.Unlock()
}

// A relay flooding one subscription fills its byte budget: that
// subscription ends with ErrOverflow (its owner re-subscribes), the
// relay gets a CLOSE, and another subscription on the same connection is
// untouched.
func TestFloodEndsOnlyTheFloodedSubscription(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var d drops
	c, p := dial(t, s, relayconn.Options{OnDrop: d.add, SubscriptionBuffer: 64 << 10})
	flooded, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, "flood")
	require.NoError(t, err)
	fid := p.reqID(t)
	calm, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, "calm")
	require.NoError(t, err)
	cid := p.reqID(t)

	e := signedNote(t, strings.Repeat("f", 1000))
	for range 500 { // ~700 kB, never taken
		p.send(t, []any{"EVENT", fid, e})
	}
	var closed string
	require.NoError(t, json.Unmarshal(p.next(t, "CLOSE")[1], &closed))
	require.Equal(t, fid, closed)
	require.Positive(t, d.get(relayconn.DropOverflow))

	good := signedNote(t, "calm")
	p.send(t, []any{"EVENT", cid, good})
	require.Equal(t, good.ID, takeAll(t, calm, 1, false)[0].ID)

	// What was buffered before the overflow can still be taken, within the
	// budget; then the end.
	total := 0
	for {
		items, err := flooded.Take(1 << 20)
		total += len(items)
		if len(items) == 0 {
			require.ErrorIs(t, err, relayconn.ErrOverflow)
			break
		}
	}
	require.Less(t, total, 500)
	require.Positive(t, total)
}

// The connection-wide budget bounds what all subscriptions hold together.
func TestConnectionBudget(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	var d drops
	c, p := dial(t, s, relayconn.Options{OnDrop: d.add, SubscriptionBuffer: 1 << 20, ConnectionBuffer: 100 << 10})
	var subs []*relayconn.Subscription
	var ids []string
	for i := range 3 {
		sub, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, fmt.Sprint("s", i))
		require.NoError(t, err)
		subs = append(subs, sub)
		ids = append(ids, p.reqID(t))
	}
	e := signedNote(t, strings.Repeat("b", 10_000))
	for i := range 15 { // 15 × ~10 kB over three subscriptions: 150 kB
		p.send(t, []any{"EVENT", ids[i%3], e})
	}
	p.send(t, []any{"NOTICE", "sync"})
	require.Eventually(t, func() bool { return d.get(relayconn.DropOverflow) > 0 }, wait, 5*time.Millisecond)
	ended := 0
	for _, sub := range subs {
		for {
			items, err := sub.Take(1 << 20)
			if len(items) > 0 {
				continue
			}
			if errors.Is(err, relayconn.ErrOverflow) {
				ended++
			}
			break
		}
	}
	require.Positive(t, ended)
}

func TestClosedByRelay(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, p := dial(t, s, relayconn.Options{})
	sub, err := c.Subscribe(context.Background(), nostr.Filters{{Kinds: []int{1}}}, "c")
	require.NoError(t, err)
	id := p.reqID(t)
	p.send(t, []any{"CLOSED", id, "error: too many filters"})
	var ce *relayconn.ClosedError
	require.ErrorAs(t, subEnd(t, sub), &ce)
	require.Equal(t, "error: too many filters", ce.Reason)
}

func TestQuery(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	c, p := dial(t, s, relayconn.Options{})
	e := signedNote(t, "q")
	go func() {
		id := p.reqID(t)
		p.send(t, []any{"EVENT", id, e})
		p.send(t, []any{"EOSE", id})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	evs, err := c.Query(ctx, nostr.Filters{{Kinds: []int{1}}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
	require.Equal(t, e.ID, evs[0].ID)
	p.next(t, "CLOSE")
}

// A relay that stops answering pings is given up on.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	// A TCP peer that completes the websocket handshake and then never
	// reads again (so pings get no pong).
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		<-stall
		_ = ws.CloseNow()
	}))
	t.Cleanup(func() {
		close(stall)
		srv.CloseClientConnections()
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	c, err := relayconn.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http"), relayconn.Options{PingInterval: 50 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	select {
	case <-c.Done():
	case <-time.After(wait):
		t.Fatal("a relay that answers no ping must end the connection")
	}
	require.ErrorContains(t, c.Err(), "keepalive")
}

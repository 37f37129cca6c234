// Package devrelay is the embedded Nostr relay of `serbero serve --dev`:
// khatru with an in-memory store (eventstore's slicestore), NIP-33
// replacement, NIP-40 expiration, listening where [relaygw].dev_relay_listen
// says (127.0.0.1:7447 by default). It is for local development only: it
// keeps nothing across restarts and has no access control. Any Nostr client
// can use it (ws://127.0.0.1:7447).
package devrelay

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/fiatjaf/eventstore/slicestore"
	"github.com/fiatjaf/khatru"
	"github.com/nbd-wtf/go-nostr"
)

// Relay is a running dev relay.
type Relay struct {
	kh   *khatru.Relay
	addr string
	done chan struct{}
	once sync.Once
}

// Start listens on addr ("host:port"; port 0 picks one) and serves.
func Start(addr string, logger *slog.Logger) (*Relay, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("dev relay: listen address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("dev relay: listen address %q: bad port", addr)
	}
	store := &lockedStore{s: &slicestore.SliceStore{MaxLimit: 5000}}
	_ = store.s.Init()
	kh := khatru.NewRelay()
	kh.Info.Name = "serbero dev relay"
	kh.Info.Description = "in-memory development relay embedded in serbero serve --dev"
	kh.Log = log.New(slogWriter{logger}, "", 0)
	kh.StoreEvent = append(kh.StoreEvent, store.save)
	kh.QueryEvents = append(kh.QueryEvents, store.query)
	kh.DeleteEvent = append(kh.DeleteEvent, store.delete)
	kh.ReplaceEvent = append(kh.ReplaceEvent, store.replace)
	kh.CountEvents = append(kh.CountEvents, store.count)
	r := &Relay{kh: kh, done: make(chan struct{})}
	started := make(chan bool)
	errc := make(chan error, 1)
	go func() {
		defer close(r.done)
		errc <- kh.Start(host, port, started)
	}()
	select {
	case <-started:
		r.addr = kh.Addr
		return r, nil
	case err := <-errc:
		return nil, fmt.Errorf("dev relay: listen %s: %w", addr, err)
	}
}

// URL is the relay's websocket URL.
func (r *Relay) URL() string { return "ws://" + r.addr }

// Addr is the listen address.
func (r *Relay) Addr() string { return r.addr }

// Close stops the relay and cuts every websocket.
func (r *Relay) Close() {
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.kh.Shutdown(ctx) // closes the websockets too
		<-r.done
	})
}

// lockedStore serialises slicestore (which reads its slice from a
// goroutine without locking) and drains queries under the lock.
type lockedStore struct {
	mu sync.Mutex
	s  *slicestore.SliceStore
}

func (l *lockedStore) query(ctx context.Context, f nostr.Filter) (chan *nostr.Event, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	evs := l.queryLocked(f)
	ch := make(chan *nostr.Event, len(evs))
	for _, e := range evs {
		ch <- e
	}
	close(ch)
	return ch, nil
}

func (l *lockedStore) queryLocked(f nostr.Filter) []*nostr.Event {
	ch, err := l.s.QueryEvents(context.Background(), f)
	if err != nil {
		return nil
	}
	var out []*nostr.Event
	for e := range ch {
		out = append(out, e)
	}
	return out
}

func (l *lockedStore) count(ctx context.Context, f nostr.Filter) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f.Limit = 0
	return int64(len(l.queryLocked(f))), nil
}

func (l *lockedStore) save(ctx context.Context, e *nostr.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := *e
	return l.s.SaveEvent(ctx, &c)
}

func (l *lockedStore) delete(ctx context.Context, e *nostr.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.DeleteEvent(ctx, e)
}

func (l *lockedStore) replace(ctx context.Context, e *nostr.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := nostr.Filter{Kinds: []int{e.Kind}, Authors: []string{e.PubKey}}
	if nostr.IsAddressableKind(e.Kind) {
		f.Tags = nostr.TagMap{"d": []string{e.Tags.GetD()}}
	}
	for _, prev := range l.queryLocked(f) {
		if prev.CreatedAt > e.CreatedAt || (prev.CreatedAt == e.CreatedAt && prev.ID <= e.ID) {
			return nil // a newer (or the same) version is stored
		}
		_ = l.s.DeleteEvent(ctx, prev)
	}
	c := *e
	return l.s.SaveEvent(ctx, &c)
}

// slogWriter sends khatru's log lines to slog at debug level.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	if w.l != nil {
		w.l.Debug("khatru", "msg", string(p))
	}
	return len(p), nil
}

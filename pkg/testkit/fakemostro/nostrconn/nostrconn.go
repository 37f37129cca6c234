// Package nostrconn is the small relay client the fakes share: keep one
// subscription per relay URL open (reconnecting with the same filters when
// a relay drops or restarts), hand every event to a callback once per id
// without verifying it (callers judge signatures themselves), and publish
// to every relay.
package nostrconn

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

// Conn is a set of relay connections with one live subscription each.
type Conn struct {
	urls    []string
	filters nostr.Filters
	handle  func(url string, evt *nostr.Event)

	mu      sync.Mutex
	seen    map[string]bool
	pub     map[string]*relayconn.Conn
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped bool
}

// Dial subscribes with filters on every URL and returns once each relay
// sent EOSE (failing the test after 10 s). handle is called from the
// subscription goroutines, once per event id across all relays. The
// connections close at the end of the test (or on Close).
func Dial(t testing.TB, urls []string, filters nostr.Filters, handle func(url string, evt *nostr.Event)) *Conn {
	t.Helper()
	c, err := Open(urls, filters, handle)
	if err != nil {
		t.Fatalf("nostrconn: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// Open is Dial outside a test: it returns an error instead of failing the
// test, and the caller closes the connections with Close.
func Open(urls []string, filters nostr.Filters, handle func(url string, evt *nostr.Event)) (*Conn, error) {
	ctx, cancel := context.WithCancel(context.Background())
	c := &Conn{urls: urls, filters: filters, handle: handle, seen: map[string]bool{},
		pub: map[string]*relayconn.Conn{}, ctx: ctx, cancel: cancel}
	for _, url := range urls {
		if len(filters) == 0 {
			continue
		}
		ready := make(chan error, 1)
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.listen(url, ready)
		}()
		var err error
		select {
		case err = <-ready:
		case <-time.After(10 * time.Second):
			err = errors.New("timed out")
		}
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("subscribe on %s: %w", url, err)
		}
	}
	return c, nil
}

// Close ends every subscription and connection.
func (c *Conn) Close() {
	c.mu.Lock()
	if c.stopped {
		c.mu.Unlock()
		return
	}
	c.stopped = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range c.pub {
		r.Close()
	}
	c.pub = map[string]*relayconn.Conn{}
}

func (c *Conn) listen(url string, ready chan<- error) {
	first := true
	for c.ctx.Err() == nil {
		err := c.subscribeOnce(url, func() {
			if first {
				first = false
				ready <- nil
			}
		})
		if first {
			first = false
			ready <- err
			if err != nil {
				return
			}
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond): // reconnect pacing
		}
	}
}

func (c *Conn) subscribeOnce(url string, subscribed func()) error {
	cctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	r, err := relayconn.Dial(cctx, url, relayconn.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer r.Close()
	// relayconn delivers everything, forged signatures included: the fakes
	// judge (and count) what they receive themselves.
	sub, err := r.Subscribe(c.ctx, c.filters, "fake")
	if err != nil {
		return err
	}
	defer sub.Close()
	err = sub.Each(c.ctx, func(it relayconn.Item) {
		if it.EOSE {
			subscribed()
			return
		}
		e := it.Event
		// Only authentic events are deduplicated: an event id does not
		// commit to the signature, so a forged copy must not shadow the
		// genuine event.
		if ok, _ := e.CheckSignature(); ok && e.CheckID() {
			c.mu.Lock()
			dup := c.seen[e.ID]
			c.seen[e.ID] = true
			c.mu.Unlock()
			if dup {
				return
			}
		}
		c.handle(url, e)
	})
	if c.ctx.Err() != nil {
		return nil
	}
	return err
}

// Publish sends evt to every relay and succeeds when at least one accepted
// it; it reconnects a dropped publishing connection once per call.
func (c *Conn) Publish(ctx context.Context, evt nostr.Event) error {
	var errs []error
	accepted := 0
	for _, url := range c.urls {
		if err := c.publishOne(ctx, url, evt); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", url, err))
			continue
		}
		accepted++
	}
	if accepted == 0 {
		return fmt.Errorf("publish %s: %w", evt.ID, errors.Join(errs...))
	}
	return nil
}

func (c *Conn) publishOne(ctx context.Context, url string, evt nostr.Event) error {
	for attempt := 0; attempt < 2; attempt++ {
		r, err := c.publisher(ctx, url)
		if err != nil {
			return err
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = r.Publish(pctx, evt)
		cancel()
		if err == nil {
			return nil
		}
		if !errors.Is(err, relayconn.ErrConnectionClosed) {
			return err // the relay answered (rejected) or timed out
		}
		c.mu.Lock()
		if c.pub[url] == r {
			delete(c.pub, url)
		}
		c.mu.Unlock()
	}
	return errors.New("relay connection lost")
}

func (c *Conn) publisher(ctx context.Context, url string) (*relayconn.Conn, error) {
	c.mu.Lock()
	r := c.pub[url]
	c.mu.Unlock()
	if r != nil && r.Err() == nil {
		return r, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := relayconn.Dial(cctx, url, relayconn.Options{})
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.pub[url]; old != nil && old != r {
		old.Close()
	}
	c.pub[url] = r
	return r, nil
}

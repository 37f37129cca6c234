package relayconn

import (
	"context"
	"sync"

	"github.com/nbd-wtf/go-nostr"
)

// Item is what a subscription delivers: one event, or the relay's
// end-of-stored-events mark (EOSE), in the order the relay sent them.
type Item struct {
	// Event is the event (nil for the EOSE mark).
	Event *nostr.Event
	// EOSE marks the end of the relay's stored events.
	EOSE bool
}

// Subscription is one REQ on a connection.
type Subscription struct {
	c       *Conn
	id      string
	filters nostr.Filters
	wake    chan struct{} // one pending signal: items waiting or the end

	mu    sync.Mutex
	queue []queued
	bytes int64
	err   error // why it ended; nil while open
}

type queued struct {
	it   Item
	size int64
}

// ID is the subscription id sent to the relay.
func (s *Subscription) ID() string { return s.id }

// Filters are the REQ's filters.
func (s *Subscription) Filters() nostr.Filters { return s.filters }

// Wake receives a value whenever items are waiting or the subscription
// has ended; call Take then.
func (s *Subscription) Wake() <-chan struct{} { return s.wake }

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// add queues it unless s has ended or it would take s over limit bytes;
// it reports whether it was queued.
func (s *Subscription) add(it Item, size, limit int64) bool {
	s.mu.Lock()
	if s.err != nil || s.bytes+size > limit {
		s.mu.Unlock()
		return false
	}
	s.queue = append(s.queue, queued{it: it, size: size})
	s.bytes += size
	s.mu.Unlock()
	s.signal()
	return true
}

// ended reports whether s has ended (its Err is set).
func (s *Subscription) ended() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err != nil
}

// finish ends s with err (first cause wins); it reports whether this call
// ended it. Items already queued can still be taken.
func (s *Subscription) finish(err error) bool {
	s.mu.Lock()
	first := s.err == nil
	if first {
		s.err = err
	}
	s.mu.Unlock()
	if first {
		s.signal()
	}
	return first
}

// Take removes up to max waiting items, in order, stopping after an EOSE
// mark. Once nothing is waiting and the subscription has ended, it returns
// why (ErrUnsubscribed, ErrOverflow, a *ClosedError or an
// ErrConnectionClosed error); otherwise the error is nil.
func (s *Subscription) Take(max int) ([]Item, error) {
	s.mu.Lock()
	if len(s.queue) == 0 {
		err := s.err
		s.mu.Unlock()
		return nil, err
	}
	n := 0
	var size int64
	for n < len(s.queue) && n < max {
		size += s.queue[n].size
		n++
		if s.queue[n-1].it.EOSE {
			break
		}
	}
	out := make([]Item, n)
	for i := range n {
		out[i] = s.queue[i].it
	}
	s.queue = append(s.queue[:0:0], s.queue[n:]...)
	s.bytes -= size
	more := len(s.queue) > 0 || s.err != nil
	s.mu.Unlock()
	s.c.release(size)
	if more {
		s.signal()
	}
	return out, nil
}

// Close sends CLOSE and ends the subscription (ErrUnsubscribed); items not
// taken are discarded. Idempotent.
func (s *Subscription) Close() {
	c := s.c
	c.mu.Lock()
	open := c.subs[s.id] == s
	if open {
		delete(c.subs, s.id)
	}
	c.mu.Unlock()
	s.finish(ErrUnsubscribed)
	s.mu.Lock()
	var size int64
	for _, q := range s.queue {
		size += q.size
	}
	s.queue, s.bytes = nil, 0
	s.mu.Unlock()
	c.release(size)
	if open {
		c.sendClose(s.id)
	}
}

// Each calls fn for every item, in order, until the subscription ends
// (returning why) or ctx ends (returning ctx's error). It is the simple
// way to consume a subscription from one goroutine.
func (s *Subscription) Each(ctx context.Context, fn func(Item)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.wake:
		}
		for {
			items, err := s.Take(256)
			if len(items) == 0 {
				if err != nil {
					return err
				}
				break
			}
			for _, it := range items {
				fn(it)
			}
		}
	}
}

// Package changefeed wakes the readers of intakesvc's change feed (the
// dispute_changes table behind WatchDisputes) when new rows commit, on
// every replica: writers NOTIFY the store's changes channel in the
// transaction that writes the rows, one pglisten subscription per process
// turns notifications into a Broadcast, and each stream re-reads the table
// when woken (and on its own poll as the fallback). See
// docs/intake.md#the-change-feed.
package changefeed

import (
	"context"
	"sync"
)

// Broadcast wakes every waiter at once: C returns a channel closed by the
// next Fire.
type Broadcast struct {
	mu sync.Mutex
	ch chan struct{}
}

// NewBroadcast returns a Broadcast.
func NewBroadcast() *Broadcast { return &Broadcast{ch: make(chan struct{})} }

// C returns the channel the next Fire closes. Take it before checking for
// work, so a Fire in between is not missed.
func (b *Broadcast) C() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.ch
}

// Fire wakes every current waiter.
func (b *Broadcast) Fire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	close(b.ch)
	b.ch = make(chan struct{})
}

// Follow fires b on every wake-up received from wake (a pglisten
// subscription: a NOTIFY on the changes channel, the LISTEN being in
// place, or a reconnection after which notifications may have been
// missed) until ctx ends.
func Follow(ctx context.Context, wake <-chan struct{}, b *Broadcast) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			b.Fire()
		}
	}
}

// Package notify wakes stream handlers when something was appended.
package notify

import "sync"

// Notifier is a broadcast: C returns a channel that is closed at the next
// Notify. Take the channel before reading the store, so an append that
// lands between the read and the wait is never missed.
type Notifier struct {
	mu sync.Mutex
	ch chan struct{}
}

// New returns a Notifier.
func New() *Notifier { return &Notifier{ch: make(chan struct{})} }

// C returns the channel closed by the next Notify.
func (n *Notifier) C() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.ch
}

// Notify wakes every waiter.
func (n *Notifier) Notify() {
	n.mu.Lock()
	close(n.ch)
	n.ch = make(chan struct{})
	n.mu.Unlock()
}

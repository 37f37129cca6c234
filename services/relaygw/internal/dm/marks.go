package dm

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// flushDelay batches delivery marks: a DM's publish outcome is written at
// most this long after it is known, together with the others of that
// moment (one statement instead of one round trip per DM).
const flushDelay = 20 * time.Millisecond

// marks records publish outcomes in batches. Until a batch is written, the
// pending outcomes are answered from memory. If the process dies before a
// write, the row still says "not delivered" and a retry republishes the
// identical stored event: relays treat it as a duplicate, recipients see
// one message.
type marks struct {
	store *store.Store
	log   *slog.Logger
	clock clockwork.Clock

	mu        sync.Mutex
	pending   map[string]*store.DMAttempt
	scheduled bool
	closed    bool
	backoff   time.Duration
}

func newMarks(st *store.Store, log *slog.Logger, clock clockwork.Clock) *marks {
	return &marks{store: st, log: log, clock: clock, pending: map[string]*store.DMAttempt{}, backoff: flushDelay}
}

func (m *marks) add(key string, delivered bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.pending[key]
	if a == nil {
		a = &store.DMAttempt{Key: key}
		m.pending[key] = a
	}
	a.Attempts++
	a.Delivered = a.Delivered || delivered
	if m.closed {
		m.mu.Unlock()
		m.flush() // no batching once closed
		m.mu.Lock()
		return
	}
	if !m.scheduled {
		m.scheduled = true
		m.clock.AfterFunc(flushDelay, m.flush)
	}
}

// delivered reports a delivery recorded in memory but not yet written.
func (m *marks) delivered(key string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	a := m.pending[key]
	return a != nil && a.Delivered
}

func (m *marks) flush() {
	m.mu.Lock()
	batch := make([]store.DMAttempt, 0, len(m.pending))
	for _, a := range m.pending {
		batch = append(batch, *a)
	}
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := m.store.MarkDMAttempts(ctx, batch)
	cancel()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil && m.closed {
		m.log.Warn("could not record dm deliveries at shutdown; a retry republishes the same events", "dms", len(batch), "error", err)
		clear(m.pending)
		m.scheduled = false
		return
	}
	if err != nil {
		m.log.Warn("could not record dm deliveries yet; retrying", "dms", len(batch), "error", err)
		m.backoff = min(2*m.backoff, 5*time.Second)
		m.clock.AfterFunc(m.backoff, m.flush)
		return
	}
	m.backoff = flushDelay
	for _, a := range batch {
		cur := m.pending[a.Key]
		if cur == nil {
			continue
		}
		// Keep what was added while the batch was being written.
		cur.Attempts -= a.Attempts
		if cur.Attempts <= 0 {
			delete(m.pending, a.Key)
		} else if a.Delivered {
			cur.Delivered = false // written; only newer outcomes remain
		}
	}
	if len(m.pending) > 0 && !m.closed {
		m.clock.AfterFunc(flushDelay, m.flush)
		return
	}
	m.scheduled = false
}

// close writes what is pending and stops batching.
func (m *marks) close() {
	m.mu.Lock()
	m.closed = true
	n := len(m.pending)
	m.mu.Unlock()
	if n > 0 {
		m.flush()
	}
}

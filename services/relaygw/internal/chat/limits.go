package chat

import (
	"sync"
	"time"
)

// bucket is a token bucket: rate tokens a minute, up to burst.
type bucket struct {
	mu     sync.Mutex
	tokens float64
	rate   float64 // per second
	burst  float64
	last   time.Time
	now    func() time.Time
}

func newBucket(perMinute, burst int, now func() time.Time) *bucket {
	return &bucket{tokens: float64(burst), rate: float64(perMinute) / 60, burst: float64(burst), last: now(), now: now}
}

func (b *bucket) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.now()
	b.tokens = min(b.burst, b.tokens+t.Sub(b.last).Seconds()*b.rate)
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// refund gives back a token spent on a line that could not be stored.
func (b *bucket) refund() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = min(b.burst, b.tokens+1)
}

// lru remembers recent outer event ids (FIFO eviction).
type lru struct {
	mu    sync.Mutex
	cap   int
	set   map[string]struct{}
	order []string
	next  int
}

func newLRU(capacity int) *lru {
	return &lru{cap: capacity, set: make(map[string]struct{}, capacity)}
}

// add records id and reports whether it was new.
func (l *lru) add(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.set[id]; ok {
		return false
	}
	if len(l.order) < l.cap {
		l.order = append(l.order, id)
	} else {
		delete(l.set, l.order[l.next])
		l.order[l.next] = id
		l.next = (l.next + 1) % l.cap
	}
	l.set[id] = struct{}{}
	return true
}

// has reports whether id is remembered.
func (l *lru) has(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.set[id]
	return ok
}

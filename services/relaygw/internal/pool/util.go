package pool

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/serbero/serbero/pkg/textcut"
)

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d over [d/2, d).
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)))
}

// truncate bounds relay text (notices, refusals) to n characters, cut at a
// character boundary, with "…" when something was cut.
func truncate(s string, n int) string { return textcut.Ellipsis(s, n) }

// seenSet remembers recently handled event ids per subscription, so the
// same event from several relays is handled once (handlers still dedupe
// durably where it matters).
type seenSet struct {
	mu    sync.Mutex
	cap   int
	set   map[string]struct{}
	order []string
	next  int
}

func newSeenSet(capacity int) *seenSet {
	return &seenSet{cap: capacity, set: make(map[string]struct{}, capacity), order: make([]string, 0, capacity)}
}

func (s *seenSet) has(key, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.set[key+"/"+id]
	return ok
}

func (s *seenSet) add(key, id string) {
	k := key + "/" + id
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.set[k]; ok {
		return
	}
	if len(s.order) < s.cap {
		s.order = append(s.order, k)
	} else {
		delete(s.set, s.order[s.next])
		s.order[s.next] = k
		s.next = (s.next + 1) % s.cap
	}
	s.set[k] = struct{}{}
}

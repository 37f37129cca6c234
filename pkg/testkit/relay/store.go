package relay

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fiatjaf/eventstore"
	"github.com/fiatjaf/eventstore/slicestore"
	"github.com/nbd-wtf/go-nostr"
)

// maxLimit bounds one query (as slicestore's MaxLimit).
const maxLimit = 1 << 20

// memStore is eventstore's slicestore, one per kind, behind one mutex, with
// an index of replaceable and addressable events by address. A query with
// kinds reads only those kinds' slices, and replacing an event looks its
// address up instead of scanning the store (khatru asks both for every
// event it accepts, so a linear scan made a long test quadratic). slicestore
// reads its slice from a goroutine without locking, so every query is
// drained under the lock; replacement is done here, atomically.
type memStore struct {
	mu     sync.Mutex
	kinds  map[int]*slicestore.SliceStore
	byAddr map[string][]*nostr.Event // every stored version of an address
}

func newMemStore() *memStore {
	return &memStore{kinds: map[int]*slicestore.SliceStore{}, byAddr: map[string][]*nostr.Event{}}
}

func (m *memStore) query(f nostr.Filter) []*nostr.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.queryLocked(f)
}

// queryLocked returns the matching events newest first (then by id, as
// slicestore orders them), at most f.Limit (a zero Limit means maxLimit,
// unless LimitZero).
func (m *memStore) queryLocked(f nostr.Filter) []*nostr.Event {
	limit := f.Limit
	if limit > maxLimit || (limit == 0 && !f.LimitZero) {
		limit = maxLimit
	}
	var stores []*slicestore.SliceStore
	if len(f.Kinds) > 0 {
		for _, k := range f.Kinds {
			if s := m.kinds[k]; s != nil && !slices.Contains(stores, s) {
				stores = append(stores, s)
			}
		}
	} else {
		for _, s := range m.kinds {
			stores = append(stores, s)
		}
	}
	var out []*nostr.Event
	for _, s := range stores {
		ch, err := s.QueryEvents(context.Background(), f)
		if err != nil {
			continue
		}
		for e := range ch {
			out = append(out, e)
		}
	}
	if len(stores) > 1 {
		slices.SortFunc(out, newestFirst)
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// newestFirst is slicestore's order: created_at descending, then id
// descending.
func newestFirst(a, b *nostr.Event) int {
	if a.CreatedAt != b.CreatedAt {
		if a.CreatedAt > b.CreatedAt {
			return -1
		}
		return 1
	}
	return strings.Compare(b.ID, a.ID)
}

func (m *memStore) kind(k int) *slicestore.SliceStore {
	s := m.kinds[k]
	if s == nil {
		s = &slicestore.SliceStore{MaxLimit: maxLimit}
		_ = s.Init()
		m.kinds[k] = s
	}
	return s
}

// address is the replacement key of a replaceable or addressable event
// ("" for other kinds).
func address(e *nostr.Event) string {
	switch {
	case nostr.IsReplaceableKind(e.Kind):
		return strconv.Itoa(e.Kind) + ":" + e.PubKey
	case nostr.IsAddressableKind(e.Kind):
		return strconv.Itoa(e.Kind) + ":" + e.PubKey + ":" + e.Tags.GetD()
	}
	return ""
}

func (m *memStore) save(e *nostr.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.saveLocked(e)
}

func (m *memStore) saveLocked(e *nostr.Event) error {
	if err := m.kind(e.Kind).SaveEvent(context.Background(), e); err != nil {
		return err
	}
	if a := address(e); a != "" {
		m.byAddr[a] = append(m.byAddr[a], e)
	}
	return nil
}

func (m *memStore) delete(e *nostr.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.deleteLocked(e)
}

func (m *memStore) deleteLocked(e *nostr.Event) {
	if s := m.kinds[e.Kind]; s != nil {
		_ = s.DeleteEvent(context.Background(), e)
	}
	if a := address(e); a != "" {
		vs := slices.DeleteFunc(m.byAddr[a], func(v *nostr.Event) bool { return v.ID == e.ID })
		if len(vs) == 0 {
			delete(m.byAddr, a)
		} else {
			m.byAddr[a] = vs
		}
	}
}

// replace stores a replaceable or addressable event unless a newer version
// (higher created_at, then lower id) is stored, and deletes older versions.
// As in khatru, an outdated event is still accepted (and broadcast).
func (m *memStore) replace(e *nostr.Event) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	store := true
	for _, prev := range slices.Clone(m.byAddr[address(e)]) {
		if prev.ID == e.ID {
			return eventstore.ErrDupEvent
		}
		if isOlder(prev, e) {
			m.deleteLocked(prev)
		} else {
			store = false
		}
	}
	if !store {
		return nil
	}
	return m.saveLocked(e)
}

func isOlder(prev, next *nostr.Event) bool {
	return prev.CreatedAt < next.CreatedAt || (prev.CreatedAt == next.CreatedAt && prev.ID > next.ID)
}

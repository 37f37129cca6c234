package chat

import (
	"slices"
	"sort"
	"sync"
	"time"
)

// window limits a verified sender's lines on the sender's own clock: at
// most max lines whose created_at fall within any span of width seconds.
// An arrival-time bucket would cut a backlog read after an outage (relays
// hand hours of lines over in a second) and lose the lines beyond the
// burst for good, since the cursor moves past them; the lines' own times
// tell a flood (many lines in the same minute) from a backlog. See
// docs/relaygw.md#chat.
type window struct {
	mu    sync.Mutex
	max   int
	width int64
	ts    []int64 // accepted line times, sorted
}

// windowKeep bounds the remembered times of one sender and form.
const windowKeep = 10000

func newWindow(max int, width time.Duration) *window {
	return &window{max: max, width: int64(width / time.Second)}
}

// allow records a line at t unless some span of width seconds holding t
// would then hold more than max lines.
func (w *window) allow(t int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	lo := sort.Search(len(w.ts), func(i int) bool { return w.ts[i] > t-w.width })
	hi := sort.Search(len(w.ts), func(i int) bool { return w.ts[i] >= t+w.width })
	near := w.ts[lo:hi] // the times a span holding t can also hold
	at := sort.Search(len(near), func(i int) bool { return near[i] >= t })
	// Spans [s, s+width) with s in (t-width, t]: for each start at a line
	// time before t (or at t itself), count the lines up to s+width.
	starts := append(append([]int64(nil), near[:at]...), t)
	for _, s := range starts {
		n := 1 // the new line
		for _, v := range near {
			if v >= s && v < s+w.width {
				n++
			}
		}
		if n > w.max {
			return false
		}
	}
	i := sort.Search(len(w.ts), func(i int) bool { return w.ts[i] >= t })
	w.ts = slices.Insert(w.ts, i, t)
	if len(w.ts) > windowKeep {
		w.ts = w.ts[len(w.ts)-windowKeep:]
	}
	return true
}

// forget removes a line recorded by allow that could not be stored.
func (w *window) forget(t int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i, ok := slices.BinarySearch(w.ts, t); ok {
		w.ts = slices.Delete(w.ts, i, i+1)
	}
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

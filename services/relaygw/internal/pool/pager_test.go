package pool

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
)

// cappedRelay answers filters as a relay with a cap on stored answers:
// newest first (created_at, then id, descending), at most min(limit, cap).
type cappedRelay struct {
	evs []*nostr.Event
	cap int
}

func (r cappedRelay) answer(f nostr.Filter) []*nostr.Event {
	var out []*nostr.Event
	for _, e := range r.evs {
		if f.Matches(e) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b *nostr.Event) int {
		if a.CreatedAt != b.CreatedAt {
			return int(b.CreatedAt - a.CreatedAt)
		}
		return strings.Compare(b.ID, a.ID)
	})
	n := r.cap
	if f.Limit > 0 && f.Limit < n {
		n = f.Limit
	}
	return out[:min(n, len(out))]
}

// events makes n events at created_at from `newest` going back, perSecond
// to a second.
func events(n int, newest nostr.Timestamp, perSecond int) []*nostr.Event {
	out := make([]*nostr.Event, n)
	for i := range out {
		out[i] = &nostr.Event{ID: fmt.Sprintf("%064d", i), Kind: 1, CreatedAt: newest - nostr.Timestamp(i/perSecond)}
	}
	return out
}

func TestPager(t *testing.T) {
	t.Parallel()
	const now = nostr.Timestamp(1_800_000_000)
	since := now - 100_000
	tests := []struct {
		name     string
		evs      []*nostr.Event
		cap      int
		limit    int
		wantREQs int // the first page included
		missing  int // unreachable (a second holds more than the cap)
		skipped  bool
	}{
		{"Empty", nil, 100, 500, 1, 0, false},
		{"FewerThanTheCap", events(30, now, 1), 100, 500, 2, 0, false},
		{"ThousandDistinctSecondsCap100", events(1000, now, 1), 100, 500, 12, 0, false},
		{"TenASecondCap100", events(1000, now, 10), 100, 500, 12, 0, false},
		{"LimitBelowTheCap", events(1000, now, 1), 5000, 100, 12, 0, false},
		{"OldEventsOutsideTheWindow", append(events(50, now, 1), events(50, since-10, 1)...), 100, 500, 2, 0, false},
		// 150 events in one second, then 50 older ones: the cap hides 50
		// of that second; the older ones are still read.
		{"ASecondAboveTheCap", append(events(150, now, 150), events(50, now-10, 1)...), 100, 500, 4, 50, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// distinct ids across the two halves of composed cases
			for i, e := range tt.evs {
				e.ID = fmt.Sprintf("%064d", i)
			}
			r := cappedRelay{evs: tt.evs, cap: tt.cap}
			p := newPager(nostr.Filter{Kinds: []int{1}, Since: &since}, tt.limit)
			seen := map[string]bool{}
			reqs := 0
			skipped := false
			f, ok := p.first(), true
			for ok {
				reqs++
				require.Less(t, reqs, 100, "paging must end")
				page := r.answer(f)
				for _, e := range page {
					seen[e.ID] = true
				}
				p.add(page)
				f, ok = p.next()
				skipped = skipped || p.skipped
				p.skipped = false
			}
			inWindow := 0
			for _, e := range tt.evs {
				if e.CreatedAt >= since {
					inWindow++
				}
			}
			require.Len(t, seen, inWindow-tt.missing, "every reachable event of the window is read")
			require.Equal(t, tt.wantREQs, reqs)
			require.Equal(t, tt.skipped, skipped)
			require.False(t, p.truncated)
		})
	}
}

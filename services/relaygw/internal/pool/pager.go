package pool

import (
	"github.com/nbd-wtf/go-nostr"
)

// minRelayCap is the smallest answer cap assumed of a relay (common caps
// are 100 to 5,000): a page of fewer events is never taken for a cut one.
const minRelayCap = 50

// maxPages bounds the pages read for one window on one relay (with a page
// of 500, a quarter of a million events): a relay that keeps producing
// "older" events cannot keep a subscription paging forever.
const maxPages = 500

// pager walks a relay's stored events backwards, page by page, for one
// filter. Relays answer at most a capped number of stored events per REQ,
// newest first, and may cap below the limit asked for, so a short page
// proves nothing; instead each next page asks until the oldest created_at
// seen so far (inclusive: the cap may have cut inside that second), and
// the window is covered when a page brings no event not already seen.
//
// One case cannot be told apart with NIP-01: a page full of events of a
// single second that were all seen may mean "nothing older" or "that
// second holds more events than the relay's cap". When such a page is at
// least as large as the largest page so far (and than minRelayCap), the
// pager steps one second back (until = boundary - 1) once, and reports it
// (skipped): events of that second beyond the cap are unreachable on that
// relay.
type pager struct {
	base  nostr.Filter
	limit int

	boundary   nostr.Timestamp     // oldest created_at seen; valid when started
	atBoundary map[string]struct{} // ids seen at boundary
	started    bool
	maxPage    int // largest page so far
	pages      int
	stepped    bool // the page in flight asked until boundary - 1

	// the page in flight
	n, fresh int
	oldest   nostr.Timestamp
	oldIDs   []string

	// skipped is set by next when it stepped past a full second;
	// truncated when it gave up after maxPages.
	skipped, truncated bool
}

func newPager(f nostr.Filter, limit int) *pager {
	return &pager{base: f, limit: limit}
}

// first is the filter of the first page (the live REQ).
func (p *pager) first() nostr.Filter {
	f := p.base
	f.Limit = p.limit
	f.LimitZero = false
	return f
}

// add counts the stored events of the page in flight.
func (p *pager) add(evs []*nostr.Event) {
	for _, ev := range evs {
		p.n++
		switch {
		case !p.started || ev.CreatedAt < p.boundary:
			p.fresh++
		case ev.CreatedAt == p.boundary:
			if _, ok := p.atBoundary[ev.ID]; !ok {
				p.fresh++
			}
		}
		switch {
		case len(p.oldIDs) == 0 || ev.CreatedAt < p.oldest:
			p.oldest = ev.CreatedAt
			p.oldIDs = append(p.oldIDs[:0], ev.ID)
		case ev.CreatedAt == p.oldest:
			p.oldIDs = append(p.oldIDs, ev.ID)
		}
	}
}

// next ends the page in flight and returns the next page's filter, or ok
// false when the window is covered.
func (p *pager) next() (f nostr.Filter, ok bool) {
	n, fresh, oldest, oldIDs := p.n, p.fresh, p.oldest, p.oldIDs
	p.n, p.fresh, p.oldIDs = 0, 0, nil
	stepped := p.stepped
	p.stepped = false
	p.pages++
	if p.pages >= maxPages {
		p.truncated = true
		return nostr.Filter{}, false
	}
	if n == 0 {
		return nostr.Filter{}, false // nothing (older) at all
	}
	if fresh == 0 {
		// Only events already seen, all of the boundary second.
		if stepped || n < p.maxPage || n < minRelayCap {
			return nostr.Filter{}, false
		}
		p.skipped = true
		p.stepped = true
		return p.page(p.boundary - 1), true
	}
	p.maxPage = max(p.maxPage, n)
	if !p.started || oldest < p.boundary {
		p.started = true
		p.boundary = oldest
		p.atBoundary = make(map[string]struct{}, len(oldIDs))
	}
	for _, id := range oldIDs {
		if oldest == p.boundary {
			p.atBoundary[id] = struct{}{}
		}
	}
	return p.page(p.boundary), true
}

func (p *pager) page(until nostr.Timestamp) nostr.Filter {
	f := p.base
	f.Until = &until
	f.Limit = p.limit
	f.LimitZero = false
	return f
}

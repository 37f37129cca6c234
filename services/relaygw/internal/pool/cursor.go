package pool

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
)

// Cursors persists subscription cursors (the newest created_at handled,
// per subscription and relay).
type Cursors interface {
	// Load returns the cursor, ok false when there is none yet.
	Load(ctx context.Context, key, relayURL string) (ts int64, ok bool, err error)
	// Advance moves the cursor forward (never back) to ts.
	Advance(ctx context.Context, key, relayURL string, ts int64) error
}

// CursoredOptions builds a Spec whose filters start from a durable cursor.
type CursoredOptions struct {
	// Key names the subscription and its cursors.
	Key string
	// Cursors stores the cursors.
	Cursors Cursors
	// Margin is subtracted from the cursor on every (re)subscribe.
	Margin time.Duration
	// Initial is the since to use when the relay has no cursor yet (nil,
	// or a nil result: none). An error retries the subscribe later.
	Initial func(ctx context.Context, relayURL string) (*nostr.Timestamp, error)
	// Page, when positive, pages the stored events (see Spec.Page).
	Page int
	// Filters builds the filters for a given since (which may be nil).
	Filters func(since *nostr.Timestamp) nostr.Filters
	// Handle processes a batch of events (see Spec.HandleBatch) and
	// returns which of them were accepted (only accepted events advance the
	// cursor; bad events do not).
	Handle func(ctx context.Context, relayURL string, evs []*nostr.Event) (accepted []*nostr.Event, err error)
	// Now is the clock (default time.Now): the cursor never passes it, so
	// a future-dated event cannot poison it.
	Now func() time.Time
}

// Cursored builds a Spec that re-subscribes from cursor - margin and
// moves the cursor to the newest accepted event, never back and never past
// now.
//
// Until a relay has sent all its stored events (EOSE) after a
// (re)subscribe, the newest accepted time is only held in memory: relays
// send stored events newest first, so a connection cut before the EOSE can
// leave older ones undelivered, and a stored cursor at the newest would
// skip them on the next subscribe. The EOSE stores the held time; a
// re-subscribe before it drops it (the next subscribe starts from the
// stored cursor again). After the EOSE the cursor moves after each batch
// with an accepted event, unless it is known to be there already (most
// batches carry events of the same second, and a write that changes
// nothing still costs a transaction).
func Cursored(o CursoredOptions) Spec {
	now := o.Now
	if now == nil {
		now = time.Now
	}
	var mu sync.Mutex
	advanced := map[string]int64{} // relay URL -> cursor known to be stored
	phases := map[string]*phase{}  // relay URL -> the current subscription's
	current := func(relayURL string) *phase {
		p := phases[relayURL]
		if p == nil {
			p = &phase{}
			phases[relayURL] = p
		}
		return p
	}
	advance := func(ctx context.Context, relayURL string, ts int64) error {
		mu.Lock()
		done := advanced[relayURL] >= ts
		mu.Unlock()
		if done {
			return nil
		}
		if err := o.Cursors.Advance(ctx, o.Key, relayURL, ts); err != nil {
			return fmt.Errorf("advance cursor: %w", err)
		}
		mu.Lock()
		advanced[relayURL] = max(advanced[relayURL], ts)
		mu.Unlock()
		return nil
	}
	return Spec{
		Key:  o.Key,
		Page: o.Page,
		Filters: func(ctx context.Context, relayURL string) (nostr.Filters, error) {
			mu.Lock()
			phases[relayURL] = &phase{} // a new subscription: before its EOSE
			mu.Unlock()
			ts, ok, err := o.Cursors.Load(ctx, o.Key, relayURL)
			if err != nil {
				return nil, fmt.Errorf("load cursor: %w", err)
			}
			var since *nostr.Timestamp
			switch {
			case ok:
				s := nostr.Timestamp(max(ts-int64(o.Margin/time.Second), 0))
				since = &s
			case o.Initial != nil:
				if since, err = o.Initial(ctx, relayURL); err != nil {
					return nil, fmt.Errorf("initial position: %w", err)
				}
			}
			return o.Filters(since), nil
		},
		HandleBatch: func(ctx context.Context, relayURL string, evs []*nostr.Event) error {
			accepted, err := o.Handle(ctx, relayURL, evs)
			if err != nil || len(accepted) == 0 {
				return err
			}
			var newest int64
			for _, ev := range accepted {
				newest = max(newest, int64(ev.CreatedAt))
			}
			ts := min(newest, now().Unix())
			mu.Lock()
			p := current(relayURL)
			if !p.stored {
				p.held = max(p.held, ts)
				mu.Unlock()
				return nil
			}
			mu.Unlock()
			return advance(ctx, relayURL, ts)
		},
		EndOfStored: func(ctx context.Context, relayURL string) error {
			mu.Lock()
			p := current(relayURL)
			p.stored = true
			held := p.held
			mu.Unlock()
			if held == 0 {
				return nil
			}
			return advance(ctx, relayURL, held)
		},
	}
}

// phase is where one subscription on one relay is: before its EOSE (stored
// false), with the newest accepted time held back, or after it.
type phase struct {
	stored bool
	held   int64
}

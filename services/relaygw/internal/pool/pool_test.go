package pool_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
)

const wait = 10 * time.Second

// EndOfStored comes once a relay has sent all its stored events, after
// every one of them was handled (more than one batch here), and never for
// a subscription cut before its EOSE.
func TestEndOfStoredFollowsEveryStoredEvent(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	k := keys.Generate()
	now := nostr.Now()
	const n = 600 // more than one batch
	var cutAfter nostr.Event
	for i := range n {
		e := nostr.Event{Kind: 1, CreatedAt: now - nostr.Timestamp(n-i), Content: fmt.Sprint(i)}
		require.NoError(t, k.Sign(&e))
		r.Inject(e)
		if i == n-100 {
			cutAfter = e // the 100th sent (newest first)
		}
	}
	r.SetFaults(relay.Faults{StallStored: relay.First(1, relay.IDs(cutAfter.ID))})

	var mu sync.Mutex
	handled := map[string]bool{}
	subscribes := 0
	var atEOSE []int // handled count at each EndOfStored
	changed := make(chan struct{}, 1)
	note := func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.After(wait)
		for {
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			select {
			case <-changed:
			case <-deadline:
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	p := pool.New(pool.Options{URLs: []string{r.URL()}, InitialBackoff: 20 * time.Millisecond})
	p.Subscribe(pool.Spec{
		Key: "notes",
		Filters: func(context.Context, string) (nostr.Filters, error) {
			mu.Lock()
			subscribes++
			mu.Unlock()
			return nostr.Filters{{Kinds: []int{1}, Authors: []string{k.PublicKey()}}}, nil
		},
		HandleBatch: func(_ context.Context, _ string, evs []*nostr.Event) error {
			mu.Lock()
			for _, e := range evs {
				handled[e.ID] = true
			}
			mu.Unlock()
			note()
			return nil
		},
		EndOfStored: func(context.Context, string) error {
			mu.Lock()
			atEOSE = append(atEOSE, len(handled))
			mu.Unlock()
			note()
			return nil
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)

	waitFor("the stored events up to the stall", func() bool { return len(handled) == 100 })
	r.DisconnectAll()
	waitFor("the end of the stored events", func() bool { return len(atEOSE) > 0 })
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []int{n}, atEOSE, "one EndOfStored, for the subscription that got the EOSE, after all its events")
	require.Equal(t, 2, subscribes)
}

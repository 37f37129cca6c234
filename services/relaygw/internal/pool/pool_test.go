package pool_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
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

// counter reads a counter of reg whose labels include the given pairs
// (summed over matches).
func counter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue metrics
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// collector records what a spec is handed, and when its window ended.
type collector struct {
	mu      sync.Mutex
	count   map[string]int
	eoses   int
	changed chan struct{}
	gate    chan struct{} // when set, the first batch waits for it to close
}

func newCollector() *collector {
	return &collector{count: map[string]int{}, changed: make(chan struct{}, 1)}
}

func (c *collector) handle(_ context.Context, _ string, evs []*nostr.Event) error {
	c.mu.Lock()
	gate := c.gate
	c.gate = nil
	c.mu.Unlock()
	if gate != nil {
		<-gate
	}
	c.mu.Lock()
	for _, e := range evs {
		c.count[e.ID]++
	}
	c.mu.Unlock()
	c.note()
	return nil
}

func (c *collector) endOfStored(context.Context, string) error {
	c.mu.Lock()
	c.eoses++
	c.mu.Unlock()
	c.note()
	return nil
}

func (c *collector) note() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *collector) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(2 * wait)
	for {
		c.mu.Lock()
		ok := cond()
		c.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func signedNotes(t *testing.T, k keys.Keys, n int, newest nostr.Timestamp, content string) []nostr.Event {
	t.Helper()
	out := make([]nostr.Event, n)
	for i := range out {
		out[i] = nostr.Event{Kind: 1, CreatedAt: newest - nostr.Timestamp(i), Content: fmt.Sprint(content, i)}
		require.NoError(t, k.Sign(&out[i]))
	}
	return out
}

func runPool(t *testing.T, o pool.Options, specs ...pool.Spec) *pool.Pool {
	t.Helper()
	if o.InitialBackoff == 0 {
		o.InitialBackoff = 20 * time.Millisecond
	}
	o.MaxBackoff = 200 * time.Millisecond
	p := pool.New(o)
	for _, s := range specs {
		p.Subscribe(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		p.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// A relay answers at most 100 stored events per REQ: a paged subscription
// still reads all 1,000, each handled once, and its window ends (and a
// cursor may move) only after the last page.
func TestPagedSubscriptionReadsACappedBacklog(t *testing.T) {
	t.Parallel()
	r := relay.StartWithOptions(t, relay.Options{MaxStoredEvents: 100})
	k := keys.Generate()
	evs := signedNotes(t, k, 1000, nostr.Now(), "backlog")
	for _, e := range evs {
		r.Inject(e)
	}
	col := newCollector()
	reg := prometheus.NewRegistry()
	m, err := pool.NewMetrics(reg)
	require.NoError(t, err)
	runPool(t, pool.Options{URLs: []string{r.URL()}, Metrics: m}, pool.Spec{
		Key: "notes", Page: 500,
		Filters: func(context.Context, string) (nostr.Filters, error) {
			return nostr.Filters{{Kinds: []int{1}, Authors: []string{k.PublicKey()}}}, nil
		},
		HandleBatch: col.handle, EndOfStored: col.endOfStored,
	})
	col.waitFor(t, "the end of the stored events", func() bool { return col.eoses == 1 })
	col.mu.Lock()
	defer col.mu.Unlock()
	require.Len(t, col.count, 1000, "every stored event, before the end of the window")
	for id, n := range col.count {
		require.Equal(t, 1, n, "handled twice: %s", id)
	}
	require.GreaterOrEqual(t, counter(t, reg, "serbero_relaygw_relay_backlog_pages_total"), 9.0)
}

// An event above the read limit is dropped and counted; the connection
// and the subscription go on.
func TestOversizedEventIsDroppedNotTheConnection(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	k := keys.Generate()
	col := newCollector()
	reg := prometheus.NewRegistry()
	m, err := pool.NewMetrics(reg)
	require.NoError(t, err)
	p := runPool(t, pool.Options{URLs: []string{r.URL()}, Metrics: m}, pool.Spec{
		Key: "notes",
		Filters: func(context.Context, string) (nostr.Filters, error) {
			return nostr.Filters{{Kinds: []int{1}, Authors: []string{k.PublicKey()}}}, nil
		},
		HandleBatch: col.handle, EndOfStored: col.endOfStored,
	})
	col.waitFor(t, "the subscription", func() bool { return col.eoses == 1 })
	huge := signedNotes(t, k, 1, nostr.Now(), strings.Repeat("x", 200<<10))[0]
	r.Inject(huge)
	small := signedNotes(t, k, 1, nostr.Now(), "small")[0]
	r.Inject(small)
	col.waitFor(t, "the small event", func() bool { return col.count[small.ID] == 1 })
	require.Zero(t, col.count[huge.ID])
	require.Equal(t, 1.0, counter(t, reg, "serbero_relaygw_relay_messages_dropped_total", "reason", "oversized"))
	require.Zero(t, p.Status()[0].Failures, "the connection was not cut")
	require.Equal(t, 1, r.Connections())
}

// A relay flooding a subscription whose handler is slow fills the
// subscription's byte budget: it is dropped (counted) and re-subscribed,
// memory stays bounded, and every event is still handled exactly once.
func TestFloodIsBoundedAndLosesNothing(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	k := keys.Generate()
	col := newCollector()
	reg := prometheus.NewRegistry()
	m, err := pool.NewMetrics(reg)
	require.NoError(t, err)
	runPool(t, pool.Options{URLs: []string{r.URL()}, Metrics: m, Conn: relayconn.Options{SubscriptionBuffer: 64 << 10}}, pool.Spec{
		Key: "notes", Page: 20,
		Filters: func(context.Context, string) (nostr.Filters, error) {
			return nostr.Filters{{Kinds: []int{1}, Authors: []string{k.PublicKey()}}}, nil
		},
		HandleBatch: col.handle, EndOfStored: col.endOfStored,
	})
	col.waitFor(t, "the subscription", func() bool { return col.eoses == 1 })
	gate := make(chan struct{})
	col.mu.Lock()
	col.gate = gate // the next batch blocks: a slow database
	col.mu.Unlock()
	evs := signedNotes(t, k, 2000, nostr.Now(), strings.Repeat("f", 1000))
	for _, e := range evs { // ~2.7 MB, far above the 64 kB budget
		r.Inject(e)
	}
	require.Eventually(t, func() bool {
		return counter(t, reg, "serbero_relaygw_relay_messages_dropped_total", "reason", "overflow") > 0
	}, wait, 5*time.Millisecond)
	close(gate)
	col.waitFor(t, "every flooded event", func() bool { return len(col.count) == 2000 })
	col.mu.Lock()
	defer col.mu.Unlock()
	for id, n := range col.count {
		require.Equal(t, 1, n, "handled twice: %s", id)
	}
}

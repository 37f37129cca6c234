package pool_test

import (
	"context"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
)

// BenchmarkPublishLatency is the end-to-end latency of publishing one
// signed event to the in-process relay through the pool, until the
// relay's OK (the relay checks the id and signature and stores it, in
// this process too). Events are built and signed before the timer.
func BenchmarkPublishLatency(b *testing.B) {
	r := relay.Start(b)
	p := pool.New(pool.Options{URLs: []string{r.URL()}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	require.Eventually(b, func() bool { return p.Connected() == 1 }, 10*time.Second, time.Millisecond)
	k := keys.Generate()
	evs := make([]nostr.Event, b.N)
	for i := range evs {
		evs[i] = nostr.Event{Kind: 1059, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", k.PublicKey()}}, Content: "x"}
		evs[i].Content = string(rune('a' + i%26))
		evs[i].Tags = append(evs[i].Tags, nostr.Tag{"n", time.Now().String()})
		if err := k.Sign(&evs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		res := p.Publish(ctx, evs[i])
		if !pool.AnyAccepted(res) {
			b.Fatalf("not accepted: %+v", res)
		}
	}
}

package dm_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	mdm "github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/relay"
	"github.com/serbero/serbero/services/relaygw/internal/dm"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

const body = "Dispute 5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b (initiated by the buyer) needs a solver. Take it in Mostrix."

// BenchmarkDMCrypto is the raw cost of one NIP-17 DM: rumor, seal (NIP-44
// + Schnorr), gift wrap (fresh key, NIP-44 + Schnorr).
func BenchmarkDMCrypto(b *testing.B) {
	sender, recipient := keys.Generate(), keys.Generate().PublicKey()
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for b.Loop() {
		if _, err := mdm.Wrap(sender, recipient, body, mdm.Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDMGateway measures relaygw's SendDirectMessage path without
// the network (no relay configured: publish returns at once) against the
// raw crypto of the same DMs, both in this run, both with enough DMs in
// flight (inFlight goroutines) to keep every core busy, so CPU time per DM
// is work, not idle spinning while Postgres answers.
//
//   - crypto-cpu-ns/op: process CPU per dm.Wrap (rumor, seal, wrap, two
//     signatures, two ECDH);
//   - cpu-ns/op: process CPU per Send (the same crypto plus validation,
//     HMAC fingerprint, the idempotency row through pgx (insert before
//     publishing, delivery mark after), JSON, logging, metrics and the
//     garbage collection of all that; the Postgres server is another
//     process and is not counted);
//   - overhead-%: (cpu-ns/op - crypto-cpu-ns/op) / crypto-cpu-ns/op;
//   - dms/s/core: 1e9 / cpu-ns/op.
//
// ns/op is the wall time per DM of the gateway phase with inFlight DMs in
// flight.
func BenchmarkDMGateway(b *testing.B) {
	const inFlight = 64
	db := pgdbtest.NewDB(b)
	id := identity.FromKeys(keys.Generate())
	s, err := dm.New(dm.Options{Identity: id, Store: store.New(db.Pool), Pool: pool.New(pool.Options{}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	recipient := keys.Generate().PublicKey()
	ctx := context.Background()
	var keyN atomic.Int64
	parallel := func(n int, op func() error) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		c0 := cpuTime()
		for range inFlight {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					if err := op(); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		return cpuTime() - c0
	}

	b.StopTimer()
	raw := parallel(b.N, func() error {
		_, err := mdm.Wrap(id.Keys(), recipient, body, mdm.Options{})
		return err
	})
	b.ReportAllocs()
	b.StartTimer()
	gw := parallel(b.N, func() error {
		_, err := s.Send(ctx, recipient, body, fmt.Sprintf("bench-%d", keyN.Add(1)))
		return err
	})
	b.StopTimer()
	perRaw, perGW := float64(raw)/float64(b.N), float64(gw)/float64(b.N)
	b.ReportMetric(perRaw, "crypto-cpu-ns/op")
	b.ReportMetric(perGW, "cpu-ns/op")
	b.ReportMetric(100*(perGW-perRaw)/perRaw, "overhead-%")
	b.ReportMetric(1e9/perGW, "dms/s/core")
}

// BenchmarkDMEndToEnd sends DMs through the gateway to the in-process
// relay (which verifies and stores each wrap, in this process too):
// ns/op is the latency of one SendDirectMessage until the relay's OK.
func BenchmarkDMEndToEnd(b *testing.B) {
	db := pgdbtest.NewDB(b)
	r := relay.Start(b)
	id := identity.FromKeys(keys.Generate())
	p := pool.New(pool.Options{URLs: []string{r.URL()}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.Run(ctx)
	require.Eventually(b, func() bool { return p.Connected() == 1 }, 10*time.Second, time.Millisecond)
	s, err := dm.New(dm.Options{Identity: id, Store: store.New(db.Pool), Pool: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	recipient := keys.Generate().PublicKey()
	b.ReportAllocs()
	i := 0
	b.ResetTimer()
	for b.Loop() {
		i++
		res, err := s.Send(ctx, recipient, body, fmt.Sprintf("e2e-%d", i))
		if err != nil || !res.Delivered {
			b.Fatalf("send: %v %+v", err, res)
		}
	}
}

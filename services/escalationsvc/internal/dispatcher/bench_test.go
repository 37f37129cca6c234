package dispatcher

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// Benchmarks (one run reports everything):
//
//	go test -run '^$' -bench BenchmarkDispatch -benchtime 1x ./internal/dispatcher/
//
// latency: 1, 2 and 3 replicas, handoffs committed one by one at 50/s
// (like mediationsvc would), p50/p99 from each commit to its DM reaching
// the solver; drain: 1, 2 and 3 replicas (each with its own pool) drain a
// pre-filled queue, handoffs/s. Sends are free (an in-memory relaygw: the
// dispatcher and Postgres alone), or take a simulated relay round trip
// (rtt100ms: what relaygw waits for a remote relay's OK; replicas then add
// concurrency, not CPU), or go through a real relaygw to an in-process
// relay and a fake solver (all of it, and Postgres, on the same cores).

// stampSender delivers every DM in memory, after an optional simulated
// relay round trip, and stamps when each dispute's DM arrived.
type stampSender struct {
	rtt  time.Duration
	mu   sync.Mutex
	at   map[string]time.Time
	want int
	all  chan struct{}
}

func newStampSender(rtt time.Duration, want int) *stampSender {
	return &stampSender{rtt: rtt, at: make(map[string]time.Time, want), want: want, all: make(chan struct{})}
}

func (s *stampSender) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest, _ ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error) {
	if s.rtt > 0 {
		t := time.NewTimer(s.rtt) // the relay's round trip (load model, not synchronisation)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	s.stamp(req.GetBody(), time.Now())
	return &relaygwv1.SendDirectMessageResponse{EventId: "e", Delivered: true}, nil
}

func (s *stampSender) stamp(body string, at time.Time) {
	id := strings.TrimPrefix(strings.SplitN(body, "\n", 3)[1], "Dispute: ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.at[id]; dup {
		return
	}
	s.at[id] = at
	if len(s.at) == s.want {
		close(s.all)
	}
}

func (s *stampSender) wait(b *testing.B, within time.Duration) {
	b.Helper()
	select {
	case <-s.all:
	case <-time.After(within):
		s.mu.Lock()
		n := len(s.at)
		s.mu.Unlock()
		b.Fatalf("only %d of %d DMs arrived within %s", n, s.want, within)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(int(p*float64(len(sorted))), len(sorted)-1)]
}

// startReplicas runs n dispatchers, each on its own pool, until the
// returned stop.
func startReplicas(b *testing.B, e *env, n int, sender Sender, solvers []config.SolverConfig, workers int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		pool := e.db.OpenPool(b)
		d := New(Options{
			Pool: pool, Sender: sender, Disputes: &dbIntake{pool: pool}, Solvers: solvers, Owner: fmt.Sprintf("bench-%d", i),
			PollInterval: time.Second, ClaimTimeout: 30 * time.Second, Workers: workers,
		})
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}
	return func() { cancel(); wg.Wait() }
}

// waitListening waits until n dispatchers LISTEN on the test database.
func waitListening(b *testing.B, e *env, n int) {
	b.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var got int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
			ListenerApplicationName).Scan(&got); err != nil {
			b.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d dispatchers listening", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// benchLatency commits count handoffs at rate per second, one per
// transaction, with replicas running, and reports commit-to-DM latency.
func benchLatency(b *testing.B, sender Sender, stamps func() map[string]time.Time, wait func(), solvers []config.SolverConfig, e *env, count int, rate float64, replicas int) {
	b.Helper()
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
SELECT 'd-' || i, 'ev-' || i, 'mostro', 'buyer', 1, 1, 'notified' FROM generate_series(0, $1 - 1) i`, count)
	if err != nil {
		b.Fatal(err)
	}
	stop := startReplicas(b, e, replicas, sender, solvers, 0)
	defer stop()
	waitListening(b, e, replicas)
	committed := make(map[string]time.Time, count)
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	b.ResetTimer()
	start := time.Now()
	for i := range count {
		time.Sleep(time.Until(next)) // the producer's pace
		next = next.Add(interval)
		id := fmt.Sprintf("d-%d", i)
		tx, err := e.pool.Begin(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := handoff.Enqueue(ctx, tx, samplePkg(id, ""), handoff.Meta{}); err != nil {
			b.Fatal(err)
		}
		if err := tx.Commit(ctx); err != nil {
			b.Fatal(err)
		}
		committed[id] = time.Now()
	}
	wait()
	elapsed := time.Since(start)
	b.StopTimer()
	at := stamps()
	lat := make([]time.Duration, 0, count)
	for id, c := range committed {
		lat = append(lat, at[id].Sub(c))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(percentile(lat, .50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(percentile(lat, .99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(count)/elapsed.Seconds(), "handoffs/s")
}

// benchDrain pre-fills the queue with count handoffs, then starts replicas
// and reports how fast they drain it.
func benchDrain(b *testing.B, sender Sender, wait func(), solvers []config.SolverConfig, e *env, count, replicas, workers int) {
	b.Helper()
	seedHandoffs(b, e, count)
	if _, err := e.pool.Exec(context.Background(), `VACUUM ANALYZE handoffs`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	stop := startReplicas(b, e, replicas, sender, solvers, workers)
	wait() // every DM arrived
	for {  // and every dispatch is recorded
		var rows int
		if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM escalation_dispatches`).Scan(&rows); err != nil {
			b.Fatal(err)
		}
		if rows == count {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("%d dispatch rows for %d handoffs", rows, count)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(count)/elapsed.Seconds(), "handoffs/s")
}

// sink is where a benchmark's DMs go and where their arrival is stamped.
type sink struct {
	sender  Sender
	solvers []config.SolverConfig
	stamps  *stampSender // arrival times by dispute id
}

// memSink delivers in memory after rtt.
func memSink(rtt time.Duration, want int) sink {
	s := newStampSender(rtt, want)
	return sink{sender: s, solvers: []config.SolverConfig{writeSolver(key(1))}, stamps: s}
}

// relaygwSink sends through a real relaygw (sharing e's database) to an
// in-process relay, and stamps each DM when the fake solver has unwrapped
// it.
func relaygwSink(b *testing.B, e *env, want int) sink {
	h := relaygwtest.Start(b, relaygwtest.Options{DB: e.db, Logger: slog.New(slog.DiscardHandler)})
	solver := fakesolver.Start(b, h.Relay.URL())
	stamps := newStampSender(0, want)
	go func() {
		for k := 1; k <= want; k++ {
			msgs := solver.WaitFor(k, 10*time.Minute)
			stamps.stamp(msgs[k-1].Body, time.Now())
		}
	}()
	return sink{sender: h.Client, solvers: []config.SolverConfig{writeSolver(solver.Pubkey())}, stamps: stamps}
}

// newSink returns the sink of a send mode: free, rtt100ms or relaygw.
func newSink(b *testing.B, e *env, mode string, want int) sink {
	switch mode {
	case "free":
		return memSink(0, want)
	case "rtt100ms":
		return memSink(100*time.Millisecond, want)
	default:
		return relaygwSink(b, e, want)
	}
}

func BenchmarkDispatch(b *testing.B) {
	const latencyCount, drainCount = 250, 1500
	for _, mode := range []string{"free", "rtt100ms", "relaygw"} {
		for replicas := 1; replicas <= 3; replicas++ {
			b.Run(fmt.Sprintf("latency/sends=%s/replicas=%d/rate=50", mode, replicas), func(b *testing.B) {
				e := newEnv(b)
				k := newSink(b, e, mode, latencyCount)
				benchLatency(b, k.sender, func() map[string]time.Time { return k.stamps.at }, func() { k.stamps.wait(b, time.Minute) },
					k.solvers, e, latencyCount, 50, replicas)
			})
		}
	}
	for _, mode := range []string{"free", "rtt100ms", "relaygw"} {
		for replicas := 1; replicas <= 3; replicas++ {
			b.Run(fmt.Sprintf("drain/sends=%s/replicas=%d", mode, replicas), func(b *testing.B) {
				e := newEnv(b)
				k := newSink(b, e, mode, drainCount)
				benchDrain(b, k.sender, func() { k.stamps.wait(b, 5*time.Minute) }, k.solvers, e, drainCount, replicas, 16)
			})
		}
	}
}

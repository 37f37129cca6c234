package intakesvc_test

import (
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/serbero/serbero/pkg/testkit/fakemostro"
)

// BenchmarkDetectionToDM drives disputes through the fake Mostro (signed
// kind 38386 revisions published to the in-process relay) at a fixed
// offered rate, through a real relaygw and intakesvc, to 3 fake solvers,
// and reports the latency from the node publishing a dispute to a solver
// having unwrapped its DM (p50, p99, max, per DM), the disputes/s
// delivered (every solver told), and this process's CPU per dispute
// (cpu-ms/dispute: fake Mostro, relay, relaygw, intakesvc and fake
// solvers together; Postgres is another process).
//
//	go test -run '^$' -bench DetectionToDM -benchtime 1x ./services/intakesvc/
func BenchmarkDetectionToDM(b *testing.B) {
	cases := []struct{ rate, n int }{
		{20, 200}, {100, 500}, {200, 1000}, {300, 900}, {400, 1200},
	}
	for _, c := range cases {
		b.Run(fmt.Sprintf("rate=%d/solvers=3", c.rate), func(b *testing.B) {
			var lat []time.Duration
			var delivered, offered float64
			var cpu time.Duration
			for range b.N {
				l, d, o, c := runDetectionToDM(b, c.rate, c.n)
				lat = append(lat, l...)
				delivered += d
				offered += o
				cpu += c
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			pct := func(p float64) float64 {
				return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(0.50), "p50_ms")
			b.ReportMetric(pct(0.99), "p99_ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
			b.ReportMetric(delivered/float64(b.N), "disputes/s")
			b.ReportMetric(offered/float64(b.N), "offered/s")
			b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N*c.n), "cpu-ms/dispute")
			b.ReportMetric(0, "ns/op")
		})
	}
}

func runDetectionToDM(b *testing.B, rate, n int) ([]time.Duration, float64, float64, time.Duration) {
	b.StopTimer()
	e := newEnvWith(b, 10)
	ss := e.solvers(3)
	// Separate processes in production: intakesvc has its own pool of
	// [database].max_conns (10), as relaygw has.
	url := e.db.URL + "&pool_max_conns=10"
	if !strings.Contains(e.db.URL, "?") {
		url = e.db.URL + "?pool_max_conns=10"
	}
	e.start(e.config(pubkeys(ss)...), func(o *options) { o.pool = openPool(b, url) })
	_ = slog.Default()
	b.StartTimer()

	var mu sync.Mutex
	published := make(map[string]time.Time, n)
	work := make(chan string, n)
	var wg sync.WaitGroup
	for range 8 { // publishers: the node's own concurrency
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				at := time.Now()
				e.mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: id})
				mu.Lock()
				published[id] = at
				mu.Unlock()
			}
		}()
	}
	start, cpu0 := time.Now(), cpuTime()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range n {
		<-tick.C
		work <- fmt.Sprintf("bench-%06d", i)
	}
	tick.Stop()
	close(work)
	wg.Wait()
	offered := float64(n) / time.Since(start).Seconds()

	var lat []time.Duration
	var last time.Time
	for _, s := range ss {
		for _, m := range s.WaitFor(n, 3*time.Minute) {
			id := strings.TrimPrefix(strings.Split(m.Body, "\n")[1], "dispute_id: ")
			lat = append(lat, m.ReceivedAt.Sub(published[id]))
			if m.ReceivedAt.After(last) {
				last = m.ReceivedAt
			}
		}
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	stages(b, e, published)
	return lat, float64(n) / last.Sub(start).Seconds(), offered, cpu
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// stages logs where the time goes, per dispute (p50/p99 of each hop):
// node publish -> relaygw stored the event -> intakesvc queued the DMs ->
// relaygw accepted the last DM.
func stages(b *testing.B, e *env, published map[string]time.Time) {
	// A solver may unwrap its DM before intakesvc recorded relaygw's answer.
	e.waitCount(0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)
	rows, err := e.db.Pool.Query(e.ctx, `SELECT d.dispute_id, r.received_at, min(j.created_at), max(j.done_at)
		FROM disputes d JOIN relaygw_dispute_events r ON r.event_id = d.event_id
		JOIN intake_notification_jobs j ON j.dispute_id = d.dispute_id GROUP BY 1, 2`)
	if err != nil {
		b.Fatal(err)
	}
	var ingest, intake, send []time.Duration
	for rows.Next() {
		var id string
		var recv, queued, done time.Time
		if err := rows.Scan(&id, &recv, &queued, &done); err != nil {
			b.Fatal(err)
		}
		ingest = append(ingest, recv.Sub(published[id]))
		intake = append(intake, queued.Sub(recv))
		send = append(send, done.Sub(queued))
	}
	q := func(ds []time.Duration) string {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return fmt.Sprintf("p50 %v p99 %v", ds[len(ds)/2].Round(time.Millisecond), ds[len(ds)*99/100].Round(time.Millisecond))
	}
	b.Logf("publish->relaygw stored: %s; stored->DMs queued: %s; queued->last DM accepted: %s", q(ingest), q(intake), q(send))
}

// BenchmarkBacklogDrain measures intakesvc's own throughput, without the
// ingest hop: the fake Mostro opens N disputes while intakesvc is down
// (relaygw stores them), then intakesvc starts and the benchmark reports
// how many disputes/s reach all 3 solvers (3 DMs each) through relaygw.
//
//	go test -run '^$' -bench BacklogDrain -benchtime 1x ./services/intakesvc/
func BenchmarkBacklogDrain(b *testing.B) {
	const n = 1000
	var rate float64
	for range b.N {
		b.StopTimer()
		e := newEnvWith(b, 10)
		ss := e.solvers(3)
		var wg sync.WaitGroup
		work := make(chan int)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range work {
					e.mostro.OpenDispute(fakemostro.DisputeSpec{DisputeID: fmt.Sprintf("drain-%06d", i)})
				}
			}()
		}
		for i := range n {
			work <- i
		}
		close(work)
		wg.Wait()
		e.waitCountAtLeast(n, `SELECT count(*) FROM relaygw_dispute_events`, 2*time.Minute)
		url := e.db.URL + "&pool_max_conns=10"
		if !strings.Contains(e.db.URL, "?") {
			url = e.db.URL + "?pool_max_conns=10"
		}
		b.StartTimer()
		start := time.Now()
		e.start(e.config(pubkeys(ss)...), func(o *options) { o.pool = openPool(b, url) })
		var last time.Time
		for _, s := range ss {
			for _, m := range s.WaitFor(n, 3*time.Minute) {
				if m.ReceivedAt.After(last) {
					last = m.ReceivedAt
				}
			}
		}
		b.StopTimer()
		rate += float64(n) / last.Sub(start).Seconds()
	}
	b.ReportMetric(rate/float64(b.N), "disputes/s")
	b.ReportMetric(3*rate/float64(b.N), "DMs/s")
	b.ReportMetric(0, "ns/op")
}

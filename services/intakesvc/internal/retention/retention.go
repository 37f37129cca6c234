// Package retention removes what intakesvc no longer needs, so no table
// grows forever: change-feed rows (dispute_changes) older than the
// retention period that no recent consumer still needs, finished outbox
// rows, old quarantine rows and feed consumers not seen for the period.
// disputes and dispute_state_transitions are the record (and the dedup
// key) and are kept. Every replica runs the job; each batch takes an
// advisory lock (a replica that finds it taken skips the run), so replicas
// never contend or count a row twice. See docs/intake.md#retention.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Config tunes the job.
type Config struct {
	// Period is how long rows are kept at least; 0 keeps everything (the
	// job does not run).
	Period time.Duration
	// Interval is the pause between two runs (the first run is at start).
	Interval time.Duration
	// Batch bounds the rows one transaction removes (default 1000).
	Batch int
}

// Job is the retention job.
type Job struct {
	cfg   Config
	st    *store.Store
	m     *metrics.Metrics
	log   *slog.Logger
	clock clockwork.Clock
}

// New builds the job.
func New(cfg Config, st *store.Store, m *metrics.Metrics, log *slog.Logger, clock clockwork.Clock) *Job {
	if cfg.Batch <= 0 {
		cfg.Batch = 1000
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Job{cfg: cfg, st: st, m: m, log: log.With("loop", "retention"), clock: clock}
}

// Run runs the job at start and every Interval until ctx ends; with a
// Period of 0 it only waits for ctx.
func (j *Job) Run(ctx context.Context) {
	if j.cfg.Period <= 0 {
		j.log.Info("retention off: intakesvc keeps every change-feed, outbox and quarantine row")
		<-ctx.Done()
		return
	}
	for {
		j.Once(ctx)
		if !retry.Sleep(ctx, j.clock, j.cfg.Interval) {
			return
		}
	}
}

// Once runs the job now and returns the rows removed per table.
func (j *Job) Once(ctx context.Context) map[string]int64 {
	before := j.clock.Now().Add(-j.cfg.Period)
	removed := map[string]int64{}
	result := "done"
tables:
	for _, table := range []string{store.RetainChanges, store.RetainJobs, store.RetainQuarantine, store.RetainConsumers} {
		for ctx.Err() == nil {
			res, err := j.st.Prune(ctx, store.Prune{Table: table, Before: before, Limit: j.cfg.Batch})
			if err != nil {
				if ctx.Err() == nil {
					j.log.Warn("retention failed; the next run retries", "table", table, "error", err)
				}
				result = "failed"
				break tables
			}
			if res.Skipped {
				result = "skipped"
				break tables
			}
			if res.Deleted > 0 {
				removed[table] += res.Deleted
				j.m.RetentionDeleted.WithLabelValues(table).Add(float64(res.Deleted))
			}
			if res.Deleted < int64(j.cfg.Batch) {
				break
			}
		}
	}
	if ctx.Err() != nil {
		return removed
	}
	j.m.RetentionRuns.WithLabelValues(result).Inc()
	if len(removed) > 0 {
		args := []any{"before", before.UTC().Format(time.RFC3339), "result", result}
		for t, n := range removed {
			args = append(args, t, n)
		}
		j.log.Info("retention removed old rows", args...)
	}
	return removed
}

// Package retention decides what relaygw may forget and forgets it, in
// small batches, on every replica safely (see docs/relaygw.md#retention).
//
// A row is kept at least Keep (default 90 days) and longer while something
// still needs it:
//
//   - dispute events: until they are older than Keep both by arrival and by
//     their own created_at (a relay asked again from an older cursor could
//     deliver them once more, and dedup is by event id), and until every
//     consumer seen within Keep has resumed past them (the after_cursor it
//     last opened StreamDisputeEvents with);
//   - chat lines: older than Keep by arrival and by inner created_at (Keep
//     is at least the gift-wrap lookback, the farthest back a relay is
//     asked for lines again);
//   - DM and chat idempotency records: older than Keep (a caller retrying
//     later than that would send the message again);
//   - subscription cursors: only those of relays no longer configured, not
//     updated within Keep;
//   - stream consumers: not seen within Keep (they protect nothing).
//
// Each batch is its own transaction holding an advisory lock; a replica
// that cannot take it skips the run, so several replicas never delete
// twice or contend. Registered chat channels are kept: a channel is
// retired by its owner, not by age.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// Options configures a Job.
type Options struct {
	Store *store.Store
	// Keep is the retention period (positive; the caller does not start a
	// job for 0).
	Keep time.Duration
	// Interval is the pause between runs.
	Interval time.Duration
	// BatchSize bounds one delete statement.
	BatchSize int
	// Relays are the configured relay URLs (their cursors are kept).
	Relays []string
	Logger *slog.Logger
	// Registerer receives the metrics (nil: none).
	Registerer prometheus.Registerer
	// Clock is the clock (nil: the real one).
	Clock clockwork.Clock
}

// Job is the retention job.
type Job struct {
	o       Options
	deleted *prometheus.CounterVec
	runs    *prometheus.CounterVec
}

// Tables the job prunes (the metric's table label).
const (
	TableDisputeEvents   = "relaygw_dispute_events"
	TableChatLines       = "relaygw_chat_lines"
	TableDMOutbox        = "relaygw_dm_outbox"
	TableChatOutbox      = "relaygw_chat_outbox"
	TableCursors         = "relaygw_cursors"
	TableStreamConsumers = "relaygw_stream_consumers"
)

// New builds a Job.
func New(o Options) (*Job, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	j := &Job{o: o,
		deleted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_retention_rows_deleted_total",
			Help: "Rows the retention job deleted, by table.",
		}, []string{"table"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_retention_runs_total",
			Help: "Retention runs by result (done, skipped: another replica held the lock, failed).",
		}, []string{"result"}),
	}
	for _, t := range []string{TableDisputeEvents, TableChatLines, TableDMOutbox, TableChatOutbox, TableCursors, TableStreamConsumers} {
		j.deleted.WithLabelValues(t)
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{j.deleted, j.runs} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return j, nil
}

// Run runs the job at once, then every Interval, until ctx ends.
func (j *Job) Run(ctx context.Context) {
	t := j.o.Clock.NewTicker(j.o.Interval)
	defer t.Stop()
	for {
		if _, err := j.RunOnce(ctx); err != nil && ctx.Err() == nil {
			j.o.Logger.Warn("retention run failed; trying again at the next interval", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		}
	}
}

// Result is what one run deleted, by table; Skipped when another replica
// held the lock.
type Result struct {
	Deleted map[string]int64
	Skipped bool
}

// RunOnce prunes every table until a batch comes back short.
func (j *Job) RunOnce(ctx context.Context) (Result, error) {
	now := j.o.Clock.Now()
	cutoff := now.Add(-j.o.Keep)
	res := Result{Deleted: map[string]int64{}}

	maxCursor := int64(1<<63 - 1)
	floor, ok, err := j.o.Store.StreamFloor(ctx, store.StreamDisputes, cutoff)
	if err != nil {
		j.runs.WithLabelValues("failed").Inc()
		return res, err
	}
	if ok {
		maxCursor = floor
	}
	steps := []struct {
		table string
		prune func(limit int) (int64, bool, error)
	}{
		{TableDisputeEvents, func(n int) (int64, bool, error) {
			return j.o.Store.PruneDisputeEvents(ctx, cutoff, cutoff.Unix(), maxCursor, n)
		}},
		{TableChatLines, func(n int) (int64, bool, error) { return j.o.Store.PruneChatLines(ctx, cutoff, cutoff.Unix(), n) }},
		{TableDMOutbox, func(n int) (int64, bool, error) { return j.o.Store.PruneDMOutbox(ctx, cutoff, n) }},
		{TableChatOutbox, func(n int) (int64, bool, error) { return j.o.Store.PruneChatOutbox(ctx, cutoff, n) }},
		{TableCursors, func(n int) (int64, bool, error) { return j.o.Store.PruneCursors(ctx, cutoff, j.o.Relays, n) }},
		{TableStreamConsumers, func(n int) (int64, bool, error) { return j.o.Store.PruneStreamConsumers(ctx, cutoff, n) }},
	}
	for _, st := range steps {
		for {
			n, locked, err := st.prune(j.o.BatchSize)
			if err != nil {
				j.runs.WithLabelValues("failed").Inc()
				j.log(res)
				return res, err
			}
			if !locked {
				res.Skipped = true
				j.runs.WithLabelValues("skipped").Inc()
				j.o.Logger.Debug("retention run skipped: another replica is running it")
				return res, nil
			}
			res.Deleted[st.table] += n
			j.deleted.WithLabelValues(st.table).Add(float64(n))
			if n < int64(j.o.BatchSize) || ctx.Err() != nil {
				break
			}
		}
	}
	j.runs.WithLabelValues("done").Inc()
	j.log(res)
	return res, ctx.Err()
}

func (j *Job) log(res Result) {
	var total int64
	args := []any{"keep", j.o.Keep.String()}
	for t, n := range res.Deleted {
		total += n
		if n > 0 {
			args = append(args, t, n)
		}
	}
	if total > 0 {
		j.o.Logger.Info("retention removed old rows", args...)
	}
}

// Consumers records where the consumers of relaygw's streams resume, the
// positions the job must not prune past.
type Consumers struct {
	store *store.Store
	log   *slog.Logger
}

// NewConsumers builds the recorder.
func NewConsumers(st *store.Store, log *slog.Logger) *Consumers {
	return &Consumers{store: st, log: log}
}

// MaxConsumerName bounds a consumer name.
const MaxConsumerName = 64

// ValidConsumer reports whether name is a usable consumer name: at most
// MaxConsumerName characters of a-z, 0-9, '.', '_' and '-' (empty is the
// unnamed consumer).
func ValidConsumer(name string) bool {
	if len(name) > MaxConsumerName {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// ResumedDisputes records that consumer opened the dispute stream after
// cursor after. It is best effort: a stream opens even when the database
// is down (it waits for it), and the position is recorded at its next
// opening; the retention period still protects everything younger.
func (c *Consumers) ResumedDisputes(ctx context.Context, consumer string, after int64) {
	if err := c.store.RecordStreamConsumer(ctx, store.StreamDisputes, consumer, after); err != nil && ctx.Err() == nil {
		c.log.Warn("could not record where a dispute stream consumer resumed", "consumer", consumer, "after_cursor", after, "error", err)
	}
}

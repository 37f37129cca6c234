// Package intake consumes relaygw's stream of the Mostro node's dispute
// events and applies each one: it verifies the event again, decides what
// the revision does (route), and persists it with the DMs it asks for in
// one transaction (store.ApplyRevision), handing a new dispute's DMs to the
// outbox at once. See docs/intake.md#the-intake-stream.
//
// Guarantees:
//   - No lost dispute: the durable cursor (intake_cursor) is the low
//     watermark of handled events: events are applied by a few workers
//     (one dispute always on the same worker), and the cursor never passes
//     an event that was not persisted. A transient failure (Postgres down)
//     is retried until the event persists; a restart resumes from the
//     cursor, and re-applying an event is a no-op (a duplicate).
//   - Nothing stalls: an event whose application fails for good (the
//     database refuses it whatever the retry) is recorded in the
//     quarantine (intake_quarantine), counted, logged, and passed.
//   - Several replicas: each processes the whole stream, serialised per
//     dispute by an advisory lock (the second replica finds the revision
//     applied: a duplicate).
//   - First start: events relaygw marks as backfill are recorded, and
//     only a dispute still initiated is notified.
package intake

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Consumer is the name intakesvc gives relaygw's dispute stream: relaygw
// records the cursor each named consumer resumes from, and its retention
// never deletes an event intakesvc has not passed.
const Consumer = "intakesvc"

// Config tunes the intake.
type Config struct {
	// MostroPubkey is the configured Mostro node (lowercase hex): the only
	// author whose dispute events are accepted.
	MostroPubkey string
	// Solvers are the configured solver pubkeys, verbatim, in config order.
	Solvers []string
	// Workers is how many disputes are persisted concurrently (default 4;
	// one dispute's revisions always go to the same worker).
	Workers int
}

// Deps are what the intake works with.
type Deps struct {
	Store   *store.Store
	Relaygw relaygwv1.RelayGatewayServiceClient
	Metrics *metrics.Metrics
	// Changes is fired when a revision changed a dispute.
	Changes *changefeed.Broadcast
	// Outbox receives the DMs a revision queued.
	Outbox *outbox.Outbox
	Logger *slog.Logger
	Clock  clockwork.Clock
}

// Intake is the dispute event consumer.
type Intake struct {
	cfg     Config
	st      *store.Store
	rg      relaygwv1.RelayGatewayServiceClient
	m       *metrics.Metrics
	changes *changefeed.Broadcast
	out     *outbox.Outbox
	log     *slog.Logger
	clock   clockwork.Clock

	backfillSeen atomic.Bool
}

// New builds the intake; nothing runs before Run.
func New(cfg Config, deps Deps) *Intake {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	clock := deps.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	changes := deps.Changes
	if changes == nil {
		changes = changefeed.NewBroadcast()
	}
	return &Intake{cfg: cfg, st: deps.Store, rg: deps.Relaygw, m: deps.Metrics, changes: changes, out: deps.Outbox,
		log: log.With("loop", "intake"), clock: clock}
}

// Run consumes relaygw's dispute event stream from the durable cursor,
// reconnecting with backoff, until ctx ends. Events are verified here, in
// stream order, then applied by the workers, each dispute always by the
// same worker (so one dispute's revisions apply in order).
func (in *Intake) Run(ctx context.Context) {
	var cursor int64
	if err := in.retry(ctx, "read intake cursor", func() (err error) {
		cursor, err = in.st.Cursor(ctx)
		return err
	}); err != nil {
		return
	}
	in.m.Cursor.Set(float64(cursor))
	if cursor == 0 {
		in.log.Info("intake started", "start", "first", "after_cursor", cursor, "workers", in.cfg.Workers,
			"note", "no intake cursor yet: relaygw's stream starts at its own first start (now, or its configured backfill window); "+
				"backfilled disputes are recorded and only those still initiated are notified")
	} else {
		in.log.Info("intake started", "start", "resume", "after_cursor", cursor, "workers", in.cfg.Workers)
	}

	wm := newWatermark(cursor)
	var wg sync.WaitGroup
	queues := make([]chan received, in.cfg.Workers)
	for i := range queues {
		queues[i] = make(chan received, 64)
		wg.Go(func() {
			for r := range queues[i] {
				if in.handle(ctx, r) != nil {
					return // ctx ended: the event stays below the watermark
				}
				wm.done(r.rev.Cursor)
			}
		})
	}
	persisted := cursor // the loop below moves cursor on
	wg.Go(func() { in.persistWatermark(ctx, wm, persisted) })
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()

	b := retry.Exponential(100*time.Millisecond, 5*time.Second)
	for ctx.Err() == nil {
		stream, err := in.rg.StreamDisputeEvents(ctx, &relaygwv1.StreamDisputeEventsRequest{AfterCursor: cursor, Consumer: Consumer})
		if err == nil {
			for {
				var resp *relaygwv1.StreamDisputeEventsResponse
				if resp, err = stream.Recv(); err != nil {
					break
				}
				b.Reset()
				ev := resp.GetEvent()
				if ev.GetCursor() <= cursor {
					continue // already received (defensive: relaygw sends > after_cursor)
				}
				cursor = ev.GetCursor()
				wm.add(cursor)
				rev, ok := in.verify(ev)
				if !ok {
					wm.done(cursor) // rejected for good: never retried
					continue
				}
				r := received{rev: rev, backfill: backfillOf(ev)}
				select {
				case queues[shard(rev.DisputeID, len(queues))] <- r:
				case <-ctx.Done():
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		delay := b.NextBackOff()
		in.log.Warn("dispute event stream interrupted; reconnecting", "after_cursor", cursor, "retry_in", delay.String(), "error", err)
		if !retry.Sleep(ctx, in.clock, delay) {
			return
		}
	}
}

// received is one verified event for a worker.
type received struct {
	rev event.Revision
	// backfill: relaygw delivered it from its first-start backfill window.
	backfill bool
}

// backfillOf reports whether relaygw marked ev as created before this
// deployment first started watching the node (its first start's margin or
// backfill window, or a relay delivering older history later).
func backfillOf(ev *relaygwv1.DisputeEvent) bool { return ev.GetBackfill() }

// shard picks the worker of a dispute.
func shard(disputeID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(disputeID))
	return int(h.Sum32() % uint32(n))
}

// verify logs and counts one received event and checks it; false means it
// was rejected (logged and counted).
func (in *Intake) verify(ev *relaygwv1.DisputeEvent) (event.Revision, bool) {
	in.m.EventsReceived.Inc()
	log := in.log.With("event_id", ev.GetEventId(), "cursor", ev.GetCursor())
	log.Info("nostr event received", "kind", int(ev.GetKind()), "author", ev.GetPubkey(), "tags", len(ev.GetTags()))
	rev, err := event.Parse(ev, int(ev.GetKind()), ev.GetSig(), in.cfg.MostroPubkey)
	var rej *event.RejectError
	if errors.As(err, &rej) {
		in.m.EventsRejected.WithLabelValues(rej.Reason).Inc()
		switch rej.Reason {
		case event.ReasonMissingS:
			log.Warn("dispatcher: dispute event has no `s` tag — cannot route", "dispute_id", rev.DisputeID)
		case event.ReasonMissingD:
			log.Error("dispute event rejected: missing `d` tag", "reason", rej.Reason)
		default:
			log.Error("dispute event rejected", "reason", rej.Reason, "detail", rej.Detail, "author", ev.GetPubkey())
		}
		return rev, false
	}
	return rev, err == nil
}

// retry runs f until it succeeds or ctx ends, logging each failure.
func (in *Intake) retry(ctx context.Context, what string, f func() error) error {
	b := retry.Exponential(100*time.Millisecond, 5*time.Second)
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		delay := b.NextBackOff()
		in.log.Error(what+" failed; retrying", "attempt", attempt, "retry_in", delay.String(), "error", err)
		if !retry.Sleep(ctx, in.clock, delay) {
			return ctx.Err()
		}
	}
}

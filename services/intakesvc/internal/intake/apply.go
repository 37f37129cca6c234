package intake

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/pkg/textcut"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/route"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Input is what Apply needs besides the revision.
type Input struct {
	// Solvers are the configured solver pubkeys, verbatim, in config
	// order (empty: nothing is queued).
	Solvers []string
	// Now is the clock of the rows written.
	Now time.Time
	// Lease > 0 leases a new dispute's initial DMs to the caller.
	Lease time.Duration
	// Backfill: the revision came from relaygw's first-start backfill
	// window. It is recorded as any other, but only the initial DMs of a
	// dispute still initiated are sent; the DMs any other revision asks
	// for (assignments) are dropped.
	Backfill bool
}

// Applied is what Apply did.
type Applied struct {
	// Decision is the routing decision.
	Decision route.Decision
	store.ApplyResult
	// Silenced: the decision asked for DMs the backfill rule dropped.
	Silenced bool
}

// Apply decides what rev does to the dispute as recorded (route.Decide,
// under the dispute's lock) and persists it with the DMs it asks for, in
// one transaction (store.ApplyRevision; the cursor moves to rev.Cursor
// when it is > 0).
func Apply(ctx context.Context, st *store.Store, rev event.Revision, in Input) (Applied, error) {
	var out Applied
	res, err := st.ApplyRevision(ctx, rev, in.Now, func(cur *store.Dispute) store.Plan {
		out.Decision = route.Decide(current(cur), rev)
		var p store.Plan
		p, out.Silenced = plan(out.Decision, cur, rev, in)
		return p
	})
	if err != nil {
		return Applied{}, err
	}
	out.ApplyResult = res
	return out, nil
}

// current is what route needs of a recorded dispute (nil when none).
func current(d *store.Dispute) *route.Current {
	if d == nil {
		return nil
	}
	c := &route.Current{State: d.LifecycleState, EventID: d.EventID, EventTimestamp: d.EventTimestamp}
	if d.NewestEventID != nil && d.NewestCreatedAt != nil {
		c.NewestEventID, c.NewestCreatedAt = *d.NewestEventID, *d.NewestCreatedAt
	}
	return c
}

// plan turns a decision into the store's plan: the DMs it asks for, to
// every solver, with their bodies and idempotency keys.
func plan(dec route.Decision, cur *store.Dispute, rev event.Revision, in Input) (store.Plan, bool) {
	p := store.Plan{Insert: dec.Insert, Track: dec.Track, SetStatus: dec.SetStatus, To: dec.To, Trigger: dec.Trigger}
	notify, silenced := dec.Notify, false
	if in.Backfill && notify != "" && notify != message.TypeInitial {
		notify, silenced = "", true
	}
	if notify == "" || len(in.Solvers) == 0 {
		return p, silenced
	}
	b := &store.Batch{Type: notify, Solvers: in.Solvers, Keys: message.Keys(notify, 0, rev.DisputeID, in.Solvers)}
	switch notify {
	case message.TypeInitial:
		initiator, ts := rev.Initiator, rev.CreatedAt
		if cur != nil {
			initiator, ts = cur.InitiatorRole, cur.EventTimestamp
		}
		body := message.Initial(rev.DisputeID, initiator, ts)
		b.Body = &body
		if dec.Insert {
			b.Lease = in.Lease // a new dispute: no earlier DM can be pending
		}
	case message.TypeAssignment:
		// Built at its first attempt (it may name Serbero by then); held
		// while Serbero's own take is pending.
		if cur != nil {
			b.NotBefore = cur.TakeIntentUntil
		}
	}
	p.DMs = b
	return p, silenced
}

// handle persists one verified event; it returns only when the event is
// persisted (or set aside for good), or ctx ended.
func (in *Intake) handle(ctx context.Context, r received) error {
	rev := r.rev
	// Outside input, bounded in logs too (a d tag can be kilobytes).
	log := in.log.With("event_id", rev.EventID, "cursor", rev.Cursor, "dispute_id", textcut.Clean(rev.DisputeID, maxQuarantineDispute),
		"status", textcut.Clean(string(rev.Status), maxQuarantineDispute))
	if r.backfill && in.backfillSeen.CompareAndSwap(false, true) {
		in.log.Info("first start with a backfill window: recording the disputes relaygw backfills; only those still initiated are notified")
	}
	persist := rev
	persist.Cursor = 0 // the watermark, not the transaction, moves the cursor
	b := retry.Exponential(100*time.Millisecond, 5*time.Second)
	var res Applied
	for attempt := 1; ; attempt++ {
		var err error
		res, err = Apply(ctx, in.st, persist, Input{Solvers: in.cfg.Solvers, Now: in.clock.Now(), Lease: in.out.Lease(), Backfill: r.backfill})
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if class, ok := Permanent(err); ok {
			if errors.Is(err, lifecycle.ErrInvalidTransition) {
				// Cannot happen with route.Decide; refuse, log, move on.
				in.m.IllegalTransitions.Inc()
				log.Error("illegal state transition refused", "error", err)
			}
			return in.quarantine(ctx, log, rev, class, err)
		}
		in.m.PersistenceFailures.Inc()
		delay := b.NextBackOff()
		log.Error("persistence_failed: skipping notification for this event", "attempt", attempt,
			"retry_in", delay.String(), "error", err)
		if !retry.Sleep(ctx, in.clock, delay) {
			return ctx.Err()
		}
	}
	in.report(log, rev, r.backfill, res)
	if len(res.JobIDs) > 0 || res.Plan.To != "" || res.Plan.Insert || res.Plan.Track {
		in.changes.Fire()
	}
	// A new dispute's DMs were leased in the transaction; the others are
	// claimed one by one (deferred ones, or those behind an earlier DM to
	// the same solver, are picked up when due or after that DM).
	if len(res.Claimed) < len(res.JobIDs) {
		leased := make(map[int64]bool, len(res.Claimed))
		for _, j := range res.Claimed {
			leased[j.ID] = true
		}
		var ids []int64
		for _, id := range res.JobIDs {
			if !leased[id] {
				ids = append(ids, id)
			}
		}
		in.out.Dispatch(ids)
	}
	in.out.Ready(ctx, res.Claimed)
	return nil
}

// Quarantine limits: the d tag and the error as stored.
const (
	maxQuarantineDispute = 256
	maxQuarantineReason  = 1024
)

// quarantine sets an event aside for good: one intake_quarantine row
// (retried while the database is unavailable), a metric and a log line;
// the stream then moves on.
func (in *Intake) quarantine(ctx context.Context, log *slog.Logger, rev event.Revision, class string, cause error) error {
	q := store.Quarantined{EventID: rev.EventID, Cursor: rev.Cursor, DisputeID: textcut.Clean(rev.DisputeID, maxQuarantineDispute),
		Class: class, Reason: textcut.Clean(cause.Error(), maxQuarantineReason)}
	var got store.Quarantined
	err := in.retry(ctx, "quarantine dispute event", func() (err error) {
		got, err = in.st.Quarantine(ctx, q)
		if _, permanent := Permanent(err); permanent {
			// Not even the quarantine row can be stored: log and move on
			// rather than stall the stream.
			log.Error("quarantine dispute event failed for good; the event is skipped", "class", class, "cause", cause.Error(), "error", err)
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	in.m.Quarantined.WithLabelValues(class).Inc()
	log.Error("dispute event quarantined: it can never be applied; intake moves on",
		"class", class, "seen_count", got.SeenCount, "error", cause)
	return nil
}

// report logs and counts what Apply did, with the reference's log event
// names.
func (in *Intake) report(log *slog.Logger, rev event.Revision, backfill bool, res Applied) {
	dec := res.Decision
	switch dec.Outcome {
	case route.Detected:
		in.m.Detected.WithLabelValues(string(rev.Status)).Inc()
		log.Info("detected new dispute", "initiator", rev.Initiator, "event_timestamp", rev.CreatedAt)
		if rev.InitiatorRaw != rev.Initiator {
			log.Warn("dispute event has no valid `initiator` tag; recorded as unknown", "initiator_tag", rev.InitiatorRaw)
		}
		if dec.Notify == message.TypeInitial && len(in.cfg.Solvers) == 0 {
			log.Warn("no solvers configured; dispute persisted but not notified")
		}
	case route.Duplicate:
		in.m.DuplicateSkips.Inc()
		log.Debug("duplicate_skip: dispute already recorded")
	case route.Stale:
		in.m.StaleRevisions.Inc()
		log.Info("stale revision ignored: a newer revision of this dispute was already applied", "created_at", rev.CreatedAt)
	}
	if backfill && (dec.Outcome == route.Detected || dec.Outcome == route.Applied) {
		outcome := "silent"
		if len(res.JobIDs) > 0 {
			outcome = "notified"
		}
		in.m.Backfilled.WithLabelValues(outcome).Inc()
		if res.Silenced {
			log.Info("backfilled revision recorded silently: only disputes still initiated are notified", "notify", dec.Notify)
		}
	}
	if dec.UnknownStatus {
		in.m.UnknownStatuses.Inc()
		log.Warn("dispatcher: skipping dispute event with unrecognised s= value", "note", dec.Note)
	}
	if dec.To != "" {
		in.m.Transitions.WithLabelValues(string(res.From), string(dec.To)).Inc()
		log.Info("state_transition", "from", string(res.From), "to", string(dec.To), "trigger", dec.Trigger)
		switch dec.To {
		case lifecycle.Taken:
			in.m.Assignments.Inc()
			solver := message.UnknownSolver
			if res.Dispute != nil && res.Dispute.AssignedSolver != nil {
				solver = *res.Dispute.AssignedSolver
			}
			log.Info("assignment_detected", "assigned_solver", solver)
		case lifecycle.Resolved:
			in.m.ResolvedExternally.Inc()
			log.Info("dispute_resolved_externally", "resolution_status", string(rev.Status))
		}
	} else if dec.Outcome == route.Applied && dec.Note != "" && !dec.UnknownStatus {
		log.Debug(dec.Note)
	}
}

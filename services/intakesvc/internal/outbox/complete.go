package outbox

import (
	"context"
	"time"

	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// process sends one DM and records the attempt. It returns the next
// pending DM of the same (dispute, solver) when known (0 otherwise), and
// false when no outcome was recorded (ctx ended, or the DM was handed back).
func (o *Outbox) process(ctx context.Context, job store.Job) (int64, bool) {
	start := o.clock.Now()
	a := o.send(ctx, job)
	var retryIn time.Duration
	if a.outcome == store.OutcomeFailed && a.retry && job.Attempts < o.cfg.SendAttempts {
		retryIn = o.retryDelay(job.Attempts)
	}
	if a.outcome == "" {
		// Stopping mid-send (or the assignment body could not be kept):
		// hand the DM back so any replica retries it at once (same
		// idempotency key), instead of after the lease.
		o.release(ctx, []int64{job.ID})
		return 0, false
	}
	// A DM relaygw answered for is recorded even when stopping (bounded),
	// so a restart does not wait for the lease to learn the outcome.
	var res store.CompleteResult
	var next int64
	record := func(c context.Context) (err error) {
		if a.outcome == store.OutcomeFailed {
			res, err = o.st.CompleteJob(c, job, a.outcome, a.errMsg, o.clock.Now(), retryIn)
			if err == nil && !res.Rescheduled && !res.AlreadyDone {
				next = -1 // unknown: look it up
			}
			return err
		}
		cs, err := o.st.CompleteDelivered(c, []store.Delivered{{Job: job, Outcome: a.outcome}}, o.clock.Now())
		if err == nil {
			res, next = cs[0].CompleteResult, cs[0].Next
		}
		return err
	}
	var err error
	if a.outcome == store.OutcomeFailed {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = record(rctx)
		cancel()
	} else {
		// The common case: recorded by the completer, together with the
		// DMs other senders finished meanwhile.
		var c store.Completed
		c, err = o.complete(job, a.outcome)
		res, next = c.CompleteResult, c.Next
	}
	if err != nil {
		o.log.Error("record notification failed; retrying", "attempt", 1, "job_id", job.ID, "error", err)
		if o.retryRecord(ctx, func() error { return record(ctx) }) != nil {
			return 0, false
		}
	}
	if next == -1 {
		next = 0
		if id, ok, err := o.st.NextJobFor(ctx, job.DisputeID, job.SolverPubkey); err == nil && ok {
			next = id
		}
	}
	if res.AlreadyDone {
		return next, true
	}
	if a.outcome != store.OutcomeSkipped {
		o.m.DetectToSent.Observe(job.QueuedSeconds + o.clock.Since(start).Seconds())
	}
	o.report(job, a, res, retryIn)
	return next, true
}

// retryRecord runs f until it succeeds or ctx ends, logging each failure.
func (o *Outbox) retryRecord(ctx context.Context, f func() error) error {
	b := retry.Exponential(100*time.Millisecond, 5*time.Second)
	for attempt := 2; ; attempt++ {
		delay := b.NextBackOff()
		if !retry.Sleep(ctx, o.clock, delay) {
			return ctx.Err()
		}
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		o.log.Error("record notification failed; retrying", "attempt", attempt, "error", err)
	}
}

// report logs and counts one recorded attempt, with the reference's log
// event names.
func (o *Outbox) report(job store.Job, a attempt, res store.CompleteResult, retryIn time.Duration) {
	log := o.log.With("dispute_id", job.DisputeID, "solver", job.SolverPubkey, "notif_type", job.NotifType, "job_id", job.ID)
	prefix := map[string]string{
		message.TypeInitial:        "notification",
		message.TypeRenotification: "renotification",
		message.TypeAssignment:     "assignment_notification",
	}[job.NotifType]
	switch a.outcome {
	case store.OutcomeSent:
		o.m.NotificationsSent.WithLabelValues(job.NotifType).Inc()
		log.Info(prefix+"_sent", "period", job.Period)
	case store.OutcomeFailed:
		o.m.NotificationsFailed.WithLabelValues(job.NotifType).Inc()
		if res.Rescheduled {
			log.Warn(prefix+"_failed", "period", job.Period, "attempt", job.Attempts, "retry_in", retryIn.String(), "error", a.errMsg)
		} else {
			log.Warn(prefix+"_failed", "period", job.Period, "attempt", job.Attempts, "error", a.errMsg)
		}
	case store.OutcomeSkipped:
		o.m.NotificationsSkipped.WithLabelValues(job.NotifType).Inc()
		log.Info(prefix+" skipped: the dispute is no longer "+string(lifecycle.Notified), "state", string(job.State))
	}
	if res.Transitioned {
		o.m.Transitions.WithLabelValues(string(lifecycle.New), string(lifecycle.Notified)).Inc()
		log.Info("state_transition", "from", string(lifecycle.New), "to", string(lifecycle.Notified),
			"trigger", lifecycle.TriggerInitialNotification)
		o.changes.Fire()
	}
	if res.BatchReachedNobody {
		switch {
		case job.NotifType == message.TypeRenotification:
			log.Warn("all re-notification sends failed; keeping last_notified_at so the next tick retries")
		case o.cfg.NobodyReachable:
			log.Warn("all initial notification sends failed; the dispute stays new and is not retried: no configured solver has a valid pubkey")
		default:
			log.Warn("all initial notification sends failed; the dispute stays new and the next tick retries (solvers with a valid pubkey only)")
		}
	}
}

// completion is one delivered (or skipped) DM for the completer.
type completion struct {
	item store.Delivered
	done chan completionResult
}

type completionResult struct {
	c   store.Completed
	err error
}

// maxCompleteBatch bounds how many DMs one completer transaction records.
const maxCompleteBatch = 256

// complete records a sent or skipped DM through the completer and waits
// for the outcome (bounded: one attempt of at most 5 s, even when
// stopping; the caller retries alone after an error).
func (o *Outbox) complete(job store.Job, outcome string) (store.Completed, error) {
	c := &completion{item: store.Delivered{Job: job, Outcome: outcome}, done: make(chan completionResult, 1)}
	o.completions <- c
	r := <-c.done
	return r.c, r.err
}

// completer records the delivered DMs senders hand it, each transaction
// taking every DM that finished while the previous one was written (group
// commit: no added delay when idle, fewer transactions under load). It
// runs until completions is closed (after the senders stopped).
func (o *Outbox) completer() {
	for first := range o.completions {
		batch := []*completion{first}
	more:
		for len(batch) < maxCompleteBatch {
			select {
			case c, ok := <-o.completions:
				if !ok {
					break more
				}
				batch = append(batch, c)
			default:
				break more
			}
		}
		items := make([]store.Delivered, len(batch))
		for i, c := range batch {
			items[i] = c.item
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cs, err := o.st.CompleteDelivered(ctx, items, o.clock.Now())
		cancel()
		for i, c := range batch {
			if err != nil {
				c.done <- completionResult{err: err}
			} else {
				c.done <- completionResult{c: cs[i]}
			}
		}
	}
}

package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"time"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/textcut"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// DetailOrphan is the detail of an orphan_dispute_reference parse failure.
const DetailOrphan = "dispute_id not found"

// dbCtx is the context of the database writes that settle a handoff: they
// outlive a shutdown's cancellation (briefly), so a handoff whose DMs went
// out is recorded, and one that was interrupted goes back to the queue at
// once instead of waiting for its claim to expire.
func dbCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// Process runs the per-handoff pipeline on a claimed handoff (see
// docs/escalation.md#the-pipeline): parse, look the dispute up, supersession
// gate, route, build the body, send to each recipient, record. Every path
// ends in exactly one queue transition (done, parked, pending again,
// failed) except a crash.
func (d *Dispatcher) Process(ctx context.Context, h *handoff.Handoff) {
	log := d.log.With("handoff_id", h.ID, "handoff_event_id", h.HandoffEventID)

	// 1. Parse.
	pkg, err := handoff.Decode([]byte(h.PayloadJSON))
	if err != nil {
		d.parseFailed(ctx, log, h, audit.EscalationDispatchParseFailed{
			DisputeID: handoff.BestEffortDisputeID([]byte(h.PayloadJSON)), HandoffEventID: h.HandoffEventID,
			Reason: audit.ParseFailedDeserialize, Detail: err.Error(),
		})
		return
	}
	log = log.With("dispute_id", pkg.DisputeID)

	// 2. The dispute, from its owner.
	disp, found, err := d.lookup(ctx, pkg.DisputeID)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("phase4_dispatch: dispute lookup failed (transient DB error); handoff remains unconsumed for the next cycle", "error", err)
		}
		d.retry(ctx, log, h, err)
		return
	}
	if !found {
		id := pkg.DisputeID
		if id == "" {
			// The audit trail needs a dispute-scoped row to name its
			// dispute: an empty id is recorded as the sentinel of a
			// payload that names none (docs/escalation.md#deliberate-differences).
			id = handoff.UnknownDisputeID
		}
		d.parseFailed(ctx, log, h, audit.EscalationDispatchParseFailed{
			DisputeID: id, HandoffEventID: h.HandoffEventID,
			Reason: audit.ParseFailedOrphan, Detail: DetailOrphan,
		})
		return
	}

	// 3. Supersession gate: only resolved supersedes.
	if disp.Resolved {
		log.Info("phase4_superseded — dispute already resolved; skipping dispatch")
		d.park(ctx, log, h, handoff.ParkSuperseded, audit.EscalationSuperseded{
			DisputeID: pkg.DisputeID, HandoffEventID: h.HandoffEventID, Reason: audit.ReasonDisputeAlreadyResolved,
		}, "dispute already resolved")
		return
	}

	// 4. Route.
	dec := route.Route(disp.AssignedSolver, d.opts.Solvers, d.opts.FallbackToAllSolvers)
	if dec.Kind == route.Unroutable {
		log.Error("phase4_unroutable — no write-permission solver configured; handoff remains unconsumed "+
			"(set [escalation].fallback_to_all_solvers = true with at least one configured solver to broadcast, "+
			"or add a write-permission solver)",
			"configured_solver_count", len(d.opts.Solvers), "config_fallback_to_all_solvers", d.opts.FallbackToAllSolvers)
		d.park(ctx, log, h, handoff.ParkUnroutable, audit.EscalationDispatchUnroutable{
			DisputeID: pkg.DisputeID, HandoffEventID: h.HandoffEventID,
			ConfiguredSolverCount: len(d.opts.Solvers),
			// "did the fallback broadcast fire?", always false on this path.
			FallbackToAllSolvers: d.opts.FallbackToAllSolvers && len(d.opts.Solvers) > 0,
		}, "no write-permission solver configured")
		return
	}

	// 5-6. Body, then the sends, outside any transaction. The dispatch's
	// time is taken before the first send, as the reference does.
	body := route.Body(pkg)
	at := d.clock.Now().Unix()
	recipients, err := d.sendAll(ctx, log, h, dec.Recipients, body)
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("phase4_dispatch: relaygw unavailable; handoff returns to the queue (repeated sends are idempotent)", "error", err)
		}
		d.retry(ctx, log, h, err)
		return
	}
	if d.opts.afterSend != nil {
		if err := d.opts.afterSend(h); err != nil {
			log.Warn("phase4_dispatch: abandoned after send (test crash)", "error", err)
			return
		}
	}

	// 7. Record.
	rec := &store.Dispatch{
		DispatchID: newUUID(), DisputeID: pkg.DisputeID, Recipients: recipients, Status: audit.DispatchStatusSendFailed,
		FallbackBroadcast: dec.FallbackBroadcast, At: at,
	}
	for _, r := range recipients {
		if r.Sent {
			rec.Status = audit.DispatchStatusDispatched
			break
		}
	}
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	err = d.store.RecordDispatch(wctx, h, rec)
	switch {
	case err == nil:
		if rec.Status == audit.DispatchStatusDispatched {
			d.m.Dispatched.Inc()
		} else {
			d.m.SendFailed.Inc()
		}
		log.Info("phase4_dispatched", "dispatch_id", rec.DispatchID, "status", rec.Status,
			"recipients", len(recipients), "via_fallback", dec.FallbackBroadcast)
	case errors.Is(err, handoff.ErrLeaseLost):
		log.Warn("phase4_dispatch: claim lost before the dispatch was recorded; the replica now holding it records it (its sends are idempotent)")
	case errors.Is(err, store.ErrAlreadyDispatched):
		log.Warn("phase4_dispatch: handoff already has a dispatch row; consuming it")
		if err := handoff.Complete(wctx, d.opts.Pool, h.Lease(), handoff.OutcomeDispatched); err != nil {
			log.Error("phase4_dispatch: complete failed", "error", err)
		}
	case errors.Is(err, audit.ErrInvalidEvent):
		d.fail(wctx, log, h, err)
	default:
		log.Error("phase4_dispatch: record_successful_dispatch failed AFTER send; next cycle will re-dispatch per the at-least-once semantics", "error", err)
		d.retry(ctx, log, h, err)
	}
}

func (d *Dispatcher) parseFailed(ctx context.Context, log *slog.Logger, h *handoff.Handoff, p audit.EscalationDispatchParseFailed) {
	// Logged at ERROR (the reference logged WARN): docs/escalation.md#deliberate-differences.
	log.Error("phase4_parse_failed — "+p.Reason, "dispute_id", p.DisputeID, "detail", p.Detail)
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	if err := d.store.RecordParseFailed(wctx, h, p, d.clock.Now().Unix()); err != nil {
		switch {
		case errors.Is(err, handoff.ErrLeaseLost):
		case errors.Is(err, audit.ErrInvalidEvent):
			d.fail(wctx, log, h, err)
		default:
			log.Error("phase4_dispatch: record_parse_failed failed; handoff remains unconsumed", "error", err)
			d.retry(ctx, log, h, err)
		}
		return
	}
	d.m.ParseFailed.WithLabelValues(p.Reason).Inc()
}

func (d *Dispatcher) park(ctx context.Context, log *slog.Logger, h *handoff.Handoff, reason handoff.ParkReason, p audit.Payload, detail string) {
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	wrote, err := d.store.Park(wctx, h, reason, p, d.opts.ParkBackoff(h.Attempts), detail, d.clock.Now().Unix())
	if err != nil {
		switch {
		case errors.Is(err, handoff.ErrLeaseLost):
		case errors.Is(err, audit.ErrInvalidEvent):
			d.fail(wctx, log, h, err)
		default:
			what := "record_supersession"
			if reason == handoff.ParkUnroutable {
				what = "record_unroutable"
			}
			log.Error("phase4_dispatch: "+what+" failed; handoff remains unconsumed", "error", err)
			d.retry(ctx, log, h, err)
		}
		return
	}
	if !wrote {
		return
	}
	if reason == handoff.ParkUnroutable {
		d.m.Unroutable.Inc()
	} else {
		d.m.Superseded.Inc()
	}
}

// retry returns the handoff to the queue after a transient error (or fails
// it after MaxErrors in a row, when set); during a shutdown it releases it
// instead (due now, no error counted). When even that write fails the claim
// simply expires and the rescuer requeues it.
func (d *Dispatcher) retry(ctx context.Context, log *slog.Logger, h *handoff.Handoff, cause error) {
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	if ctx.Err() != nil {
		// Interrupted by a shutdown, not an error of the handoff: let
		// another replica take it now.
		if err := handoff.Release(wctx, d.opts.Pool, h.Lease()); err != nil && !errors.Is(err, handoff.ErrLeaseLost) {
			log.Error("phase4_dispatch: could not release the handoff at shutdown; its claim will expire", "error", err)
		}
		return
	}
	st, err := handoff.Retry(wctx, d.opts.Pool, h.Lease(), d.opts.RetryBackoff(h.ConsecutiveErrors+1), truncate(cause.Error(), 1000), d.opts.MaxErrors)
	if err != nil {
		if !errors.Is(err, handoff.ErrLeaseLost) {
			log.Error("phase4_dispatch: could not return the handoff to the queue; its claim will expire", "error", err)
		}
		return
	}
	if st == handoff.StatusFailed {
		d.m.Failed.Inc()
		log.Error("phase4_dispatch: handoff failed after repeated errors; an operator must requeue it",
			"consecutive_errors", h.ConsecutiveErrors+1)
		return
	}
	d.m.Retried.Inc()
}

// fail gives up on a handoff whose record the audit trail refuses (a row
// that can never be written, e.g. a handoff row with an empty session id):
// retrying would loop forever, so it waits, failed, for an operator.
func (d *Dispatcher) fail(ctx context.Context, log *slog.Logger, h *handoff.Handoff, cause error) {
	log.Error("phase4_dispatch: the audit trail refuses this handoff's record; failed, an operator must look at it", "error", cause)
	if err := handoff.Fail(ctx, d.opts.Pool, h.Lease(), truncate(cause.Error(), 1000)); err != nil {
		if !errors.Is(err, handoff.ErrLeaseLost) {
			log.Error("phase4_dispatch: could not fail the handoff; its claim will expire", "error", err)
		}
		return
	}
	d.m.Failed.Inc()
}

// truncate bounds text for a column: at most n bytes, cut at a character
// boundary (a byte cut inside one is invalid UTF-8, which Postgres refuses).
func truncate(s string, n int) string { return textcut.Bytes(s, n) }

// short abbreviates a pubkey for logs (solver pubkeys are public, but long).
func short(pk string) string {
	if len(pk) > 16 {
		return pk[:8] + "…" + pk[len(pk)-4:]
	}
	return pk
}

// newUUID returns a random (version 4) UUID, canonical lowercase text.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

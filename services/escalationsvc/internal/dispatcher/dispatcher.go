package dispatcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/textcut"
	"github.com/serbero/serbero/services/escalationsvc/internal/metrics"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Sender sends one NIP-17 DM (relaygw's SendDirectMessage).
type Sender interface {
	SendDirectMessage(ctx context.Context, in *relaygwv1.SendDirectMessageRequest, opts ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error)
}

// Options configure a Dispatcher. Zero values take the defaults noted.
type Options struct {
	Pool    *pgxpool.Pool
	Sender  Sender
	Logger  *slog.Logger
	Metrics *metrics.Metrics // nil: private, unregistered collectors

	// Solvers and FallbackToAllSolvers are [[solvers]] and
	// [escalation].fallback_to_all_solvers.
	Solvers              []config.SolverConfig
	FallbackToAllSolvers bool
	// PollInterval is [escalation].dispatch_interval_seconds: the poll
	// fallback when no notification comes (jittered ±20 %). Default 30 s.
	PollInterval time.Duration
	// ClaimTimeout is [escalation].claim_timeout_seconds. Default 60 s.
	ClaimTimeout time.Duration

	// Owner names this replica in claimed_by; default host-pid-random.
	// Must be unique per running instance.
	Owner string
	// Workers is how many handoffs one replica processes at once (sends
	// to the recipients of one handoff stay sequential). Default 16.
	Workers int
	// MaxErrors, when positive, is how many consecutive transient errors
	// (or expired claims) fail a handoff, for an operator to requeue. The
	// default, 0, never fails one: a transient error (relaygw or Postgres
	// unavailable) is retried with RetryBackoff until it clears, as the
	// reference retries every cycle, so an outage of any length loses no
	// handoff.
	MaxErrors int
	// ParkBackoff is how long a parked handoff waits before it is
	// evaluated again, by claim attempt (1-based). Default PollInterval ×
	// 2^(attempt−1), at most 1 h.
	ParkBackoff func(attempt int) time.Duration
	// RetryBackoff is the delay after a transient error, by consecutive
	// error count (1-based). Default 1 s × 2^(n−1), at most 5 min.
	RetryBackoff func(errors int) time.Duration
	// SendTimeout bounds one SendDirectMessage call. Default 30 s.
	SendTimeout time.Duration
	// Now is the clock of the unix timestamps written (default time.Now).
	Now func() time.Time

	// afterSend, when set (tests), runs after the sends and before the
	// dispatch is recorded; an error abandons the handoff there, as a
	// crash would (the claim is left to expire).
	afterSend func(h *handoff.Handoff) error
}

// Dispatcher turns queued handoffs into escalation_handoff/v1 DMs.
type Dispatcher struct {
	opts  Options
	log   *slog.Logger
	m     *metrics.Metrics
	store *store.Store
}

// New returns a Dispatcher with the defaults applied.
func New(opts Options) *Dispatcher {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New(nil, nil, nil)
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 30 * time.Second
	}
	if opts.ClaimTimeout <= 0 {
		opts.ClaimTimeout = time.Minute
	}
	if opts.Owner == "" {
		opts.Owner = DefaultOwner()
	}
	if opts.Workers <= 0 {
		opts.Workers = 16
	}
	opts.Workers = min(opts.Workers, handoff.MaxClaimBatch)
	opts.MaxErrors = max(opts.MaxErrors, 0)
	if opts.ParkBackoff == nil {
		base := opts.PollInterval
		opts.ParkBackoff = func(attempt int) time.Duration {
			return min(base<<min(max(attempt-1, 0), 16), time.Hour)
		}
	}
	if opts.RetryBackoff == nil {
		opts.RetryBackoff = func(n int) time.Duration {
			return min(time.Second<<min(max(n-1, 0), 16), 5*time.Minute)
		}
	}
	if opts.SendTimeout <= 0 {
		opts.SendTimeout = 30 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Dispatcher{
		opts:  opts,
		log:   opts.Logger,
		m:     opts.Metrics,
		store: store.New(opts.Pool),
	}
}

// DefaultOwner returns a replica name unique per process start:
// host-pid-random.
func DefaultOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "escalationsvc"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b))
}

// Owner is this replica's claimed_by name.
func (d *Dispatcher) Owner() string { return d.opts.Owner }

// Routable reports whether the configuration can route any handoff (some
// write solver, or the fallback with at least one solver).
func (d *Dispatcher) Routable() bool {
	return route.Route(nil, d.opts.Solvers, d.opts.FallbackToAllSolvers).Kind != route.Unroutable
}

// RunOnce is one cycle: return expired claims to the queue, claim up to
// MaxClaimBatch due handoffs, and process them all (Workers at a time). It
// returns how many it claimed. Per-handoff errors never fail the cycle.
func (d *Dispatcher) RunOnce(ctx context.Context) (int, error) {
	d.rescue(ctx)
	claimed, err := d.claim(ctx, handoff.MaxClaimBatch)
	if err != nil {
		return 0, err
	}
	sem := make(chan struct{}, d.opts.Workers)
	var wg sync.WaitGroup
	for i := range claimed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			d.Process(ctx, &claimed[i])
		}()
	}
	wg.Wait()
	return len(claimed), nil
}

func (d *Dispatcher) claim(ctx context.Context, n int) ([]handoff.Handoff, error) {
	claimed, err := handoff.Claim(ctx, d.opts.Pool, n, d.opts.Owner, d.opts.ClaimTimeout)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("phase4_dispatcher_cycle_failed", "error", err)
		}
		return nil, err
	}
	d.m.Claimed.Add(float64(len(claimed)))
	if len(claimed) > 0 {
		d.log.Debug("phase4_cycle_pending", "claimed", len(claimed))
	}
	return claimed, nil
}

func (d *Dispatcher) rescue(ctx context.Context) {
	r, err := handoff.Rescue(ctx, d.opts.Pool, d.opts.MaxErrors)
	if err != nil {
		if ctx.Err() == nil {
			d.log.Error("phase4: rescue of expired claims failed", "error", err)
		}
		return
	}
	if n := len(r.Requeued) + len(r.Failed); n > 0 {
		d.m.Rescued.Add(float64(n))
		d.m.Failed.Add(float64(len(r.Failed)))
		d.log.Warn("phase4: returned handoffs whose claimer stopped to the queue",
			"requeued", len(r.Requeued), "failed", len(r.Failed))
	}
}

// dbCtx is the context of the database writes that settle a handoff: they
// outlive a shutdown's cancellation (briefly), so a handoff whose DMs went
// out is recorded, and one that was interrupted goes back to the queue at
// once instead of waiting for its claim to expire.
func dbCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}

// Process runs the per-handoff pipeline of spec 10 §B5 on a claimed
// handoff: parse, load the dispute, supersession gate, route, build the
// body, send to each recipient, record. Every path ends in exactly one
// queue transition (done, parked, pending again, failed) except a crash.
func (d *Dispatcher) Process(ctx context.Context, h *handoff.Handoff) {
	log := d.log.With("handoff_id", h.ID, "handoff_event_id", h.HandoffEventID)

	// 1. Parse.
	pkg, err := handoff.Decode([]byte(h.PayloadJSON))
	if err != nil {
		d.parseFailed(ctx, log, h, store.ParseFailedPayload{
			DisputeID: handoff.BestEffortDisputeID([]byte(h.PayloadJSON)), HandoffEventID: h.HandoffEventID,
			Reason: string(handoff.OutcomeDeserializeFailed), Detail: err.Error(),
		})
		return
	}
	log = log.With("dispute_id", pkg.DisputeID)

	// 2. The dispute.
	dispute, found, err := d.store.Dispute(ctx, pkg.DisputeID)
	if err != nil {
		if ctx.Err() == nil {
			log.Error("phase4_dispatch: dispute lookup failed (transient DB error); handoff remains unconsumed for the next cycle", "error", err)
		}
		d.retry(ctx, log, h, err)
		return
	}
	if !found {
		d.parseFailed(ctx, log, h, store.ParseFailedPayload{
			DisputeID: pkg.DisputeID, HandoffEventID: h.HandoffEventID,
			Reason: string(handoff.OutcomeOrphanDisputeReference), Detail: store.DetailOrphan,
		})
		return
	}

	// 3. Supersession gate: only resolved supersedes.
	if dispute.LifecycleState == store.LifecycleResolved {
		log.Info("phase4_superseded — dispute already resolved; skipping dispatch")
		d.park(ctx, log, h, handoff.ParkSuperseded, store.SupersededPayload{
			DisputeID: pkg.DisputeID, HandoffEventID: h.HandoffEventID, Reason: store.ReasonResolved,
		}, "dispute already resolved")
		return
	}

	// 4. Route.
	dec := route.Route(dispute.AssignedSolver, d.opts.Solvers, d.opts.FallbackToAllSolvers)
	if dec.Kind == route.Unroutable {
		log.Error("phase4_unroutable — no write-permission solver configured; handoff remains unconsumed "+
			"(set [escalation].fallback_to_all_solvers = true with at least one configured solver to broadcast, "+
			"or add a write-permission solver)",
			"configured_solver_count", len(d.opts.Solvers), "config_fallback_to_all_solvers", d.opts.FallbackToAllSolvers)
		d.park(ctx, log, h, handoff.ParkUnroutable, store.UnroutablePayload{
			DisputeID: pkg.DisputeID, HandoffEventID: h.HandoffEventID,
			ConfiguredSolverCount: len(d.opts.Solvers),
			// "did rule 3 fire?", always false on this path (§B8).
			FallbackToAllSolvers: d.opts.FallbackToAllSolvers && len(d.opts.Solvers) > 0,
		}, "no write-permission solver configured")
		return
	}

	// 5-6. Body, then the sends, outside any transaction.
	body := route.Body(pkg)
	started := d.opts.Now()
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
		DispatchID: newUUID(), DisputeID: pkg.DisputeID, Recipients: recipients, Status: store.StatusSendFailed,
		FallbackBroadcast: dec.FallbackBroadcast, CreatedAt: started.Unix(), DispatchedAt: d.opts.Now().Unix(),
	}
	for _, r := range recipients {
		if r.Sent {
			rec.Status = store.StatusDispatched
			break
		}
	}
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	err = d.store.RecordDispatch(wctx, h, rec)
	switch {
	case err == nil:
		if rec.Status == store.StatusDispatched {
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
	default:
		log.Error("phase4_dispatch: record_successful_dispatch failed AFTER send; next cycle will re-dispatch per the at-least-once semantics", "error", err)
		d.retry(ctx, log, h, err)
	}
}

// errTransient marks a send that did not reach relaygw's verdict.
var errTransient = errors.New("relaygw unavailable")

// sendAll sends body to each recipient in order. A recipient whose pubkey
// does not parse, or that relaygw refuses as invalid, or whose DM no relay
// accepted, is a failed recipient. Any other relaygw error aborts the whole
// handoff as transient (nothing is recorded; the retry repeats every send
// under the same idempotency keys, so no recipient gets a second DM).
func (d *Dispatcher) sendAll(ctx context.Context, log *slog.Logger, h *handoff.Handoff, recipients []string, body string) ([]store.Recipient, error) {
	out := make([]store.Recipient, 0, len(recipients))
	for _, pk := range recipients {
		norm, err := config.NormalizePubkey(pk)
		if err == nil && !keys.ValidPubkey(norm) {
			err = errors.New("not a valid secp256k1 x-only public key")
		}
		if err != nil {
			out = append(out, store.Recipient{Pubkey: pk, Error: "invalid pubkey: " + err.Error()})
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, d.opts.SendTimeout)
		resp, err := d.opts.Sender.SendDirectMessage(sctx, &relaygwv1.SendDirectMessageRequest{
			RecipientPubkey: pk, Body: body, IdempotencyKey: IdempotencyKey(h.HandoffEventID, norm),
		})
		cancel()
		switch {
		case err != nil && status.Code(err) == codes.InvalidArgument:
			out = append(out, store.Recipient{Pubkey: pk, Error: "notification error: gift-wrap send failed: " + status.Convert(err).Message()})
		case err != nil:
			return nil, fmt.Errorf("%w: send to %s: %w", errTransient, short(norm), err)
		case !resp.GetDelivered():
			out = append(out, store.Recipient{Pubkey: pk, Error: "notification error: gift-wrap send failed: " + describeResults(resp.GetResults())})
		default:
			out = append(out, store.Recipient{Pubkey: pk, Sent: true})
			d.m.DispatchLatency.Observe(time.Since(h.CreatedAt).Seconds())
		}
	}
	for _, r := range out {
		if !r.Sent {
			log.Warn("phase4_dispatch: recipient not reached", "solver", short(r.Pubkey), "error", r.Error)
		}
	}
	return out, nil
}

// IdempotencyKey is the relaygw idempotency key of one recipient's DM of
// one handoff: stable across retries, claims and replicas.
func IdempotencyKey(handoffEventID int64, recipientHex string) string {
	return fmt.Sprintf("escalation_handoff:%d:%s", handoffEventID, recipientHex)
}

func describeResults(results []*relaygwv1.PublishResult) string {
	if len(results) == 0 {
		return "no relay accepted the gift wrap"
	}
	parts := make([]string, 0, len(results))
	for _, r := range results {
		s := r.GetRelayUrl() + ": " + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "PUBLISH_OUTCOME_"))
		if r.GetMessage() != "" {
			s += " (" + r.GetMessage() + ")"
		}
		parts = append(parts, s)
	}
	return "no relay accepted the gift wrap: " + strings.Join(parts, "; ")
}

func (d *Dispatcher) parseFailed(ctx context.Context, log *slog.Logger, h *handoff.Handoff, p store.ParseFailedPayload) {
	// Spec 10 §D16: FR-214 asks for ERROR (the reference logged WARN).
	log.Error("phase4_parse_failed — "+p.Reason, "dispute_id", p.DisputeID, "detail", p.Detail)
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	if err := d.store.RecordParseFailed(wctx, h, p, d.opts.Now().Unix()); err != nil {
		if errors.Is(err, handoff.ErrLeaseLost) {
			return
		}
		log.Error("phase4_dispatch: record_parse_failed failed; handoff remains unconsumed", "error", err)
		d.retry(ctx, log, h, err)
		return
	}
	d.m.ParseFailed.WithLabelValues(p.Reason).Inc()
}

func (d *Dispatcher) park(ctx context.Context, log *slog.Logger, h *handoff.Handoff, reason handoff.ParkReason, payload any, detail string) {
	wctx, cancel := dbCtx(ctx)
	defer cancel()
	wrote, err := d.store.Park(wctx, h, reason, payload, d.opts.ParkBackoff(h.Attempts), detail, d.opts.Now().Unix())
	if err != nil {
		if errors.Is(err, handoff.ErrLeaseLost) {
			return
		}
		what := "record_supersession"
		if reason == handoff.ParkUnroutable {
			what = "record_unroutable"
		}
		log.Error("phase4_dispatch: "+what+" failed; handoff remains unconsumed", "error", err)
		d.retry(ctx, log, h, err)
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
// it after MaxErrors in a row, when set); during a shutdown it releases it instead (due
// now, no error counted). When even that write fails the claim simply
// expires and the rescuer requeues it.
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

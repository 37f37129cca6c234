package engine

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// worker runs one live session this replica holds the lease of: it sends
// what the outbox holds, ingests the parties' lines, evaluates rounds,
// delivers the summary or escalates, and watches the party timeout. All
// its writes are fenced by the lease term.
type worker struct {
	e     *Engine
	fence store.Fence
	id    string
	// buyer and seller are the parties' trade pubkeys (immutable; the
	// chat follower reads them).
	buyer, seller string
	sess          store.EngineSession // the worker goroutine's copy; re-read before each decision
	bundle        bundle.Bundle

	lines  chan *relaygwv1.ChatMessage
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
	cursor atomic.Int64

	// cls is the classification that led to a summary, handed over from
	// the decision (nil after a restart: read back from the audit trail).
	cls *reasoner.Classification
	// ended is set once the session left the live states (or the lease
	// was lost): the worker returns.
	ended bool
	retry time.Duration
}

// adopt starts the worker of a session this replica holds (a new one, or
// one whose lease it acquired). cls is the opening classification when it
// led to a summary.
func (e *Engine) adopt(ctx context.Context, sess store.EngineSession, cls *reasoner.Classification) {
	e.mu.Lock()
	if _, ok := e.workers[sess.SessionID]; ok {
		e.mu.Unlock()
		return
	}
	wctx, cancel := context.WithCancel(ctx)
	w := &worker{
		e: e, fence: sess.Fence(), id: sess.SessionID, buyer: sess.BuyerTrade, seller: sess.SellerTrade, sess: sess, lines: make(chan *relaygwv1.ChatMessage, 64),
		wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{}),
	}
	if cls != nil && cls.Decision.Outcome == "summarize" {
		w.cls = cls
	}
	w.cursor.Store(sess.ChatCursor)
	e.workers[sess.SessionID] = w
	e.byParty[sess.BuyerTrade] = w
	e.byParty[sess.SellerTrade] = w
	e.mu.Unlock()
	e.chat.add(w)
	go w.run(wctx)
}

// forget removes a finished worker.
func (e *Engine) forget(w *worker) {
	e.mu.Lock()
	if e.workers[w.id] == w {
		delete(e.workers, w.id)
	}
	for _, p := range []string{w.buyer, w.seller} {
		if e.byParty[p] == w {
			delete(e.byParty, p)
		}
	}
	e.mu.Unlock()
	e.chat.remove(w)
}

// workerFor returns the running worker of a session, if any.
func (e *Engine) workerFor(sessionID string) *worker {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.workers[sessionID]
}

// stopWorkers stops every worker and gives their leases up.
func (e *Engine) stopWorkers() {
	e.mu.Lock()
	ws := make([]*worker, 0, len(e.workers))
	for _, w := range e.workers {
		ws = append(ws, w)
	}
	e.mu.Unlock()
	for _, w := range ws {
		w.cancel()
		<-w.done
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.o.Store.ReleaseLease(ctx, w.fence); err != nil {
			e.log.Warn("giving a session lease up at stop failed; it expires by itself", "session_id", w.id, "error", err)
		}
		cancel()
	}
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// deliver hands a chat line to the worker (false when it has ended).
func (w *worker) deliver(ctx context.Context, m *relaygwv1.ChatMessage) bool {
	select {
	case w.lines <- m:
		return true
	case <-w.done:
		return false
	case <-ctx.Done():
		return false
	}
}

func (w *worker) run(ctx context.Context) {
	defer close(w.done)
	defer w.e.forget(w)
	log := w.e.log.With("session_id", w.id, "dispute_id", w.sess.DisputeID)
	if !w.resume(ctx) {
		return
	}
	for !w.ended && ctx.Err() == nil {
		w.retry = 0
		if err := w.step(ctx); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				log.Info("session lease lost; another replica carries the session on")
				return
			}
			if ctx.Err() != nil {
				return
			}
			log.Warn("session step failed; retrying", "error", err)
			w.retry = 2 * time.Second
		}
		if w.ended {
			break
		}
		var (
			timerC <-chan time.Time
			timer  interface{ Stop() bool }
		)
		wait := w.retry
		if d, ok := w.timeoutIn(); ok && (wait == 0 || d < wait) {
			wait = d
		}
		if wait > 0 {
			t := w.e.o.Clock.NewTimer(wait)
			timer, timerC = t, t.Chan()
		}
		w.wait(ctx, timerC, log)
		if timer != nil {
			timer.Stop()
		}
	}
}

// wait blocks until something happens to the session: a chat line, a
// poke, the timer (retry or party timeout), or the end.
func (w *worker) wait(ctx context.Context, timerC <-chan time.Time, log interface{ Warn(string, ...any) }) {
	select {
	case <-ctx.Done():
	case <-w.wake:
	case <-timerC:
		if err := w.checkTimeout(ctx); err != nil && !errors.Is(err, store.ErrLeaseLost) {
			log.Warn("party timeout check failed", "error", err)
		}
	case m := <-w.lines:
		batch := []*relaygwv1.ChatMessage{m}
	drain:
		for {
			select {
			case m := <-w.lines:
				batch = append(batch, m)
			default:
				break drain
			}
		}
		if err := w.ingest(ctx, batch); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				w.ended = true
				return
			}
			log.Warn("ingesting chat lines failed; they are delivered again after a restart of the stream", "error", err)
			w.e.chat.resync(w)
		}
	}
}

// step does what the session's state asks for: send queued messages,
// deliver a summary, or evaluate fresh replies.
func (w *worker) step(ctx context.Context) error {
	if err := w.drainOutbox(ctx); err != nil {
		return err
	}
	sess, err := w.e.o.Store.EngineSessionByID(ctx, w.e.o.Pool, w.id)
	if err != nil {
		return err
	}
	w.sess = sess
	st := session.State(sess.State)
	switch {
	case !st.Live():
		w.end(ctx)
		return nil
	case st == session.Classified || st == session.SummaryPending:
		return w.deliverSummary(ctx)
	case st == session.AwaitingResponse:
		return w.advance(ctx)
	}
	return nil
}

// resume prepares an adopted session: its pinned bundle (escalating
// policy_bundle_missing when it is nowhere to be found) and what happened
// to the dispute meanwhile. It returns false when the session ended.
func (w *worker) resume(ctx context.Context) bool {
	log := w.e.log.With("session_id", w.id, "dispute_id", w.sess.DisputeID)
	for ctx.Err() == nil {
		b, err := w.e.o.Core.BundleByHash(ctx, w.sess.PolicyHash)
		if errors.Is(err, reasoner.ErrBundleMissing) {
			log.Error("startup resume: pinned prompt bundle missing; session escalated (policy_bundle_missing)",
				"pinned_hash", w.sess.PolicyHash, "loaded_hash", w.e.o.Core.Bundle().PolicyHash)
			w.escalateSession(ctx, escalation{
				trigger: audit.TriggerPolicyBundleMissing, noBundleID: true,
				bundle: bundle.Bundle{ID: w.sess.PromptBundleID, PolicyHash: w.sess.PolicyHash},
				payload: audit.EscalationRecommendedBundleMissing{
					LoadedHash: w.e.o.Core.Bundle().PolicyHash, PinnedHash: w.sess.PolicyHash, SessionID: w.id,
				},
			})
			return false
		}
		if err != nil {
			log.Warn("loading the pinned prompt bundle failed; retrying", "error", err)
			if !retry.Sleep(ctx, w.e.o.Clock, 2*time.Second) {
				return false
			}
			continue
		}
		w.bundle = b
		break
	}
	if resp, err := w.e.o.Intake.GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: w.sess.DisputeID}); err == nil {
		if err := w.e.onDispute(ctx, resp.GetDispute()); err != nil {
			log.Warn("reconciling the dispute at adoption failed", "error", err)
		}
	}
	return ctx.Err() == nil
}

// end marks the session finished on this replica: its lease is given up
// and the parties' chat channels retired.
func (w *worker) end(ctx context.Context) {
	if w.ended {
		return
	}
	w.ended = true
	_ = w.e.o.Store.ReleaseLease(ctx, w.fence)
	if _, err := w.e.o.Relaygw.RetireChatChannels(ctx, &relaygwv1.RetireChatChannelsRequest{
		PartyTradePubkeys: []string{w.sess.BuyerTrade, w.sess.SellerTrade},
	}); err != nil {
		w.e.log.Warn("retiring the session's chat channels failed", "session_id", w.id, "error", err)
	}
}

// inTx runs f in a transaction with the session locked under the lease.
func (w *worker) inTx(ctx context.Context, f func(tx pgx.Tx, sess store.EngineSession) error) error {
	return w.e.o.Store.InTx(ctx, func(tx pgx.Tx) error {
		sess, err := w.e.o.Store.LockSession(ctx, tx, w.fence)
		if err != nil {
			return err
		}
		return f(tx, sess)
	})
}

// escalateSession recommends escalation for the session (fenced), then
// sends the compact escalation DM when phase 4 is off, and ends the
// worker.
func (w *worker) escalateSession(ctx context.Context, x escalation) {
	x.disputeID, x.sessionID = w.sess.DisputeID, w.id
	if x.at == 0 {
		x.at = w.e.now()
	}
	if x.bundle.PolicyHash == "" {
		x.bundle = w.bundle
	}
	err := w.inTx(ctx, func(tx pgx.Tx, _ store.EngineSession) error {
		if err := w.e.recommend(ctx, tx, x); err != nil {
			return err
		}
		return w.e.o.Store.SetStartState(ctx, tx, w.sess.DisputeID, store.StartEscalated, "")
	})
	if err != nil {
		if !errors.Is(err, store.ErrLeaseLost) {
			w.e.log.Warn("recommending escalation failed", "session_id", w.id, "trigger", x.trigger, "error", err)
		}
		if errors.Is(err, store.ErrIllegalTransition) {
			w.end(ctx)
		}
		return
	}
	w.e.o.Metrics.escalations.WithLabelValues(x.trigger).Inc()
	w.e.o.Metrics.outcome(w.sess, "escalated", w.e.o.Clock.Now())
	w.e.log.Warn("escalation_recommended", "session_id", w.id, "dispute_id", w.sess.DisputeID, "trigger", x.trigger)
	if !w.e.o.EscalationEnabled {
		w.e.sendRouted(ctx, w.sess.DisputeID, w.id, session.SessionEscalationDM(w.id, w.sess.DisputeID, x.trigger), notifEscalation, "escalation")
	}
	w.end(ctx)
}

// timeoutIn returns how long until the party timeout fires.
func (w *worker) timeoutIn() (time.Duration, bool) {
	t := w.e.o.PartyResponseTimeout
	if t <= 0 {
		return 0, false
	}
	ref := w.sess.StartedAt
	for _, p := range []*int64{w.sess.BuyerLastSeen, w.sess.SellerLastSeen} {
		if p != nil && *p > ref {
			ref = *p
		}
	}
	d := time.Unix(ref, 0).Add(t).Sub(w.e.o.Clock.Now()) + time.Second
	return max(d, 10*time.Millisecond), true
}

// checkTimeout escalates party_unresponsive when neither party answered
// in time.
func (w *worker) checkTimeout(ctx context.Context) error {
	sess, err := w.e.o.Store.EngineSessionByID(ctx, w.e.o.Pool, w.id)
	if err != nil {
		return err
	}
	w.sess = sess
	if !session.State(sess.State).Live() {
		return nil
	}
	if session.PartyTimedOut(w.e.now(), sess.StartedAt, sess.BuyerLastSeen, sess.SellerLastSeen, w.e.o.PartyResponseTimeout) {
		w.escalateSession(ctx, escalation{trigger: "party_unresponsive"})
	}
	return nil
}

// Package engine is intakesvc's background work: the intake loop over
// relaygw's dispute event stream, the DM senders draining the outbox, the
// re-notification timer, the per-state gauge, and the change-feed listener
// behind WatchDisputes.
//
// Guarantees:
//   - No lost dispute: the durable cursor (Postgres) is the low watermark
//     of persisted events (events are applied by a few workers, one dispute
//     always on the same worker); when Postgres is down an event is retried
//     until it persists, and a restart resumes from the cursor (re-applying
//     an event is a no-op: newest-revision tracking makes it a duplicate).
//   - No duplicate DM: the decision to notify and the outbox rows commit
//     with the dispute; each outbox row has a stable relaygw idempotency key,
//     so a re-send after a crash or lease expiry returns the first outcome
//     (or republishes the very same gift wrap).
//   - Several replicas: each processes the whole stream, serialised per
//     dispute by an advisory lock (the second replica finds the revision
//     applied: duplicate); outbox rows and re-notification batches are
//     claimed with FOR UPDATE SKIP LOCKED and leases.
package engine

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/route"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Config tunes the engine. Zero values take the defaults noted.
type Config struct {
	// MostroPubkey is the configured Mostro node (hex): the only author
	// whose dispute events are accepted.
	MostroPubkey string
	// Solvers are the configured solver pubkeys, verbatim, in config order.
	Solvers []string
	// RenotifyAfter is [timeouts].renotification_seconds.
	RenotifyAfter time.Duration
	// CheckInterval is the re-notification tick (at least 1 s).
	CheckInterval time.Duration
	// Workers is the number of concurrent DM senders (default 32: more DMs
	// in flight make bigger batches, in relaygw's outbox insert and in the
	// completer, so fewer statements per DM).
	Workers int
	// Lease is how long a claimed DM is reserved for its sender before any
	// replica may retry it (default 60 s; longer than SendTimeout).
	Lease time.Duration
	// SendTimeout bounds one SendDirectMessage call (default 30 s).
	SendTimeout time.Duration
	// PollInterval is how often the outbox is scanned for DMs no local
	// sender was told about (default 1 s).
	PollInterval time.Duration
	// GaugeInterval is how often the per-state gauge is refreshed (default
	// 10 s).
	GaugeInterval time.Duration
	// IntakeWorkers is how many disputes are persisted concurrently
	// (default 4; one dispute's revisions always go to the same worker).
	IntakeWorkers int
	// SendAttempts is how many times one DM is tried when relays do not
	// accept it (default 5; an invalid pubkey is never retried). Retries
	// reuse the idempotency key: relaygw republishes the same gift wrap.
	SendAttempts int
	// RetryBase is the delay before the first retry, doubled after each
	// (default 1 s).
	RetryBase time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Workers <= 0 {
		c.Workers = 32
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 30 * time.Second
	}
	if c.Lease <= c.SendTimeout {
		c.Lease = 2 * c.SendTimeout
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Second
	}
	if c.GaugeInterval <= 0 {
		c.GaugeInterval = 10 * time.Second
	}
	if c.IntakeWorkers <= 0 {
		c.IntakeWorkers = 4
	}
	if c.SendAttempts <= 0 {
		c.SendAttempts = 5
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
	if c.CheckInterval < time.Second {
		c.CheckInterval = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// FromConfig builds the engine configuration from Serbero's config.
func FromConfig(cfg *config.Config) Config {
	solvers := make([]string, len(cfg.Solvers))
	for i, s := range cfg.Solvers {
		solvers[i] = s.Pubkey
	}
	return Config{
		MostroPubkey:  cfg.Mostro.Pubkey,
		Solvers:       solvers,
		RenotifyAfter: cfg.Timeouts.Renotification(),
		CheckInterval: cfg.Timeouts.RenotificationCheckInterval(),
	}
}

// Engine runs intakesvc's background work.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	st      *store.Store
	rg      relaygwv1.RelayGatewayServiceClient
	m       *Metrics
	changes *Broadcast

	work    chan int64     // job ids to claim and send
	claimed chan store.Job // jobs already claimed by the poller
	ready   chan readyJob  // jobs leased when they were queued (ApplyRevisionClaim)
	poke    chan struct{}  // wakes the poller
	// completions feeds the completer, which records delivered DMs in
	// batches (one transaction for whatever senders finished meanwhile).
	completions chan *completion

	// reachable are the configured solvers whose pubkey a DM can be
	// addressed to (config order); invalid are the others, reported at
	// startup. An invalid pubkey stays invalid until the configuration
	// changes (a restart), so only reachable solvers are retried.
	reachable []string
	invalid   []invalidSolver

	idMu      sync.Mutex
	serberoPK string
}

// invalidSolver is a configured solver whose pubkey no DM can be addressed to.
type invalidSolver struct {
	index  int
	pubkey string
	err    error
}

// New builds an engine.
func New(cfg Config, log *slog.Logger, st *store.Store, rg relaygwv1.RelayGatewayServiceClient, m *Metrics, changes *Broadcast) *Engine {
	cfg.defaults()
	e := &Engine{
		cfg: cfg, log: log, st: st, rg: rg, m: m, changes: changes,
		work:        make(chan int64, 4096),
		claimed:     make(chan store.Job, cfg.Workers),
		ready:       make(chan readyJob, 4096),
		poke:        make(chan struct{}, 1),
		completions: make(chan *completion, cfg.Workers),
	}
	for i, pk := range cfg.Solvers {
		if _, err := normalizeSolver(pk); err != nil {
			e.invalid = append(e.invalid, invalidSolver{index: i, pubkey: pk, err: err})
			continue
		}
		e.reachable = append(e.reachable, pk)
	}
	return e
}

// readyJob is a job leased with its insert, waiting for a sender since at.
type readyJob struct {
	job store.Job
	at  time.Time
}

// Run runs every loop until ctx is cancelled.
func (e *Engine) Run(ctx context.Context) error {
	if len(e.cfg.Solvers) == 0 {
		e.log.Warn("no solvers configured; disputes will be persisted but no notifications sent")
	}
	for _, inv := range e.invalid {
		// Solver pubkeys are public; the error says what is wrong with it.
		e.log.Error("invalid solver pubkey: this solver cannot be notified until the configuration is fixed",
			"index", inv.index, "solver", inv.pubkey, "error", inv.err)
	}
	if len(e.cfg.Solvers) > 0 && len(e.reachable) == 0 {
		e.log.Warn("no configured solver has a valid pubkey; disputes will be persisted but stay new (nobody can be notified)")
	}
	var wg, senders sync.WaitGroup
	start := func(f func(context.Context)) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		e.completer()
	}()
	for range e.cfg.Workers {
		senders.Add(1)
		go func() { defer senders.Done(); e.sender(ctx) }()
	}
	start(e.poller)
	start(e.intake)
	start(e.renotifier)
	start(e.gauge)
	start(e.listen)
	wg.Wait()
	senders.Wait()
	// Senders record what relaygw answered even when stopping; then the
	// completer ends, and leased DMs nobody sent are handed back.
	close(e.completions)
	<-completerDone
	e.releaseReady(ctx)
	return nil
}

// releaseReady gives back the leases of jobs still waiting for a sender
// (the process is stopping), so any replica sends them at once instead of
// after the lease.
func (e *Engine) releaseReady(ctx context.Context) {
	var ids []int64
	for {
		select {
		case r := <-e.ready:
			ids = append(ids, r.job.ID)
			continue
		case j := <-e.claimed:
			ids = append(ids, j.ID)
			continue
		default:
		}
		break
	}
	if len(ids) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := e.st.ReleaseJobs(rctx, ids); err != nil {
		e.log.Debug("release notification jobs failed; their leases will expire", "jobs", len(ids), "error", err)
	}
}

// dispatch hands freshly queued jobs to local senders without blocking (the
// poller picks up whatever does not fit).
func (e *Engine) dispatch(ids []int64) {
	for _, id := range ids {
		select {
		case e.work <- id:
		default:
			e.pokePoller()
			return
		}
	}
}

func (e *Engine) pokePoller() {
	select {
	case e.poke <- struct{}{}:
	default:
	}
}

// wait sleeps d or until ctx ends; false when ctx ended.
func wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// backoff doubles d up to max.
func backoff(d, max time.Duration) time.Duration {
	if d *= 2; d > max {
		return max
	}
	return d
}

// retry runs f until it succeeds or ctx ends, logging each failure.
func (e *Engine) retry(ctx context.Context, what string, f func() error) error {
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		e.log.Error(what+" failed; retrying", "attempt", attempt, "retry_in", delay.String(), "error", err)
		if !wait(ctx, delay) {
			return ctx.Err()
		}
		delay = backoff(delay, 5*time.Second)
	}
}

// ---- intake ----

// intake consumes relaygw's dispute event stream from the durable cursor,
// reconnecting with backoff. Events are verified here, in stream order,
// then applied by IntakeWorkers workers, each dispute always by the same
// worker (so one dispute's revisions apply in order). The durable cursor is
// the low watermark of applied events: it never passes an event that was
// not persisted, whatever order the workers finish in.
func (e *Engine) intake(ctx context.Context) {
	log := e.log.With("loop", "intake")
	var cursor int64
	if err := e.retry(ctx, "read intake cursor", func() (err error) {
		cursor, err = e.st.Cursor(ctx)
		return err
	}); err != nil {
		return
	}
	e.m.Cursor.Set(float64(cursor))
	log.Info("intake started", "after_cursor", cursor, "workers", e.cfg.IntakeWorkers)

	wm := newWatermark(cursor)
	var wg sync.WaitGroup
	queues := make([]chan event.Revision, e.cfg.IntakeWorkers)
	for i := range queues {
		queues[i] = make(chan event.Revision, 64)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rev := range queues[i] {
				if e.apply(ctx, rev) != nil {
					return // ctx ended: the event stays below the watermark
				}
				wm.done(rev.Cursor)
			}
		}()
	}
	wg.Add(1)
	go func(persisted int64) {
		defer wg.Done()
		e.persistWatermark(ctx, wm, persisted)
	}(cursor)
	defer func() {
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()

	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		stream, err := e.rg.StreamDisputeEvents(ctx, &relaygwv1.StreamDisputeEventsRequest{AfterCursor: cursor})
		if err == nil {
			for {
				var resp *relaygwv1.StreamDisputeEventsResponse
				if resp, err = stream.Recv(); err != nil {
					break
				}
				delay = 100 * time.Millisecond
				ev := resp.GetEvent()
				if ev.GetCursor() <= cursor {
					continue // already received (defensive: relaygw sends > after_cursor)
				}
				cursor = ev.GetCursor()
				wm.add(cursor)
				rev, ok := e.verify(ev)
				if !ok {
					wm.done(cursor) // rejected for good: never retried
					continue
				}
				select {
				case queues[shard(rev.DisputeID, len(queues))] <- rev:
				case <-ctx.Done():
					return
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("dispute event stream interrupted; reconnecting", "after_cursor", cursor, "retry_in", delay.String(), "error", err)
		if !wait(ctx, delay) {
			return
		}
		delay = backoff(delay, 5*time.Second)
	}
}

// shard picks the worker of a dispute.
func shard(disputeID string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(disputeID))
	return int(h.Sum32() % uint32(n))
}

// verify logs and counts one received event and checks it; false means it
// was rejected (logged and counted).
func (e *Engine) verify(ev *relaygwv1.DisputeEvent) (event.Revision, bool) {
	e.m.EventsReceived.Inc()
	log := e.log.With("event_id", ev.GetEventId(), "cursor", ev.GetCursor())
	log.Info("nostr event received", "kind", eventKind(ev), "author", ev.GetPubkey(), "tags", len(ev.GetTags()))
	rev, err := event.Parse(ev, eventKind(ev), eventSig(ev), e.cfg.MostroPubkey)
	var rej *event.RejectError
	if errors.As(err, &rej) {
		e.m.EventsRejected.WithLabelValues(rej.Reason).Inc()
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

// apply persists one verified event; it returns only when the event is
// persisted (or refused as illegal), or ctx ended.
func (e *Engine) apply(ctx context.Context, rev event.Revision) error {
	log := e.log.With("event_id", rev.EventID, "cursor", rev.Cursor, "dispute_id", rev.DisputeID, "status", string(rev.Status))
	persist := rev
	persist.Cursor = 0 // the watermark, not the transaction, moves the cursor
	var res store.ApplyResult
	var err error
	delay := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		res, err = e.st.ApplyRevisionClaim(ctx, persist, e.cfg.Solvers, e.cfg.Now(), e.cfg.Lease)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if errors.Is(err, lifecycle.ErrInvalidTransition) {
			// Cannot happen with route.Decide; refuse, log, move on.
			e.m.IllegalTransitions.Inc()
			log.Error("illegal state transition refused", "error", err)
			return nil
		}
		e.m.PersistenceFailures.Inc()
		log.Error("persistence_failed: skipping notification for this event", "attempt", attempt,
			"retry_in", delay.String(), "error", err)
		if !wait(ctx, delay) {
			return ctx.Err()
		}
		delay = backoff(delay, 5*time.Second)
	}
	e.report(log, rev, res)
	if len(res.JobIDs) > 0 || res.Decision.To != "" || res.Decision.Insert || res.Decision.Track {
		e.changes.Fire()
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
		e.dispatch(ids)
	}
	now := time.Now()
	for i, j := range res.Claimed {
		select {
		case e.ready <- readyJob{job: j, at: now}:
			continue
		default:
		}
		// Senders are far behind (or stopping): never hold up intake; hand
		// the rest back to the outbox, where the poller finds them.
		var ids []int64
		for _, j := range res.Claimed[i:] {
			ids = append(ids, j.ID)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		err := e.st.ReleaseJobs(rctx, ids)
		cancel()
		if err != nil {
			log.Debug("release notification jobs failed; their leases will expire", "error", err)
		}
		e.pokePoller()
		break
	}
	return nil
}

// cursorEvery is the least time between two writes of the intake cursor:
// under load the watermark moves with every event, and a restart replaying
// the last fraction of a second re-applies events harmlessly (duplicates).
const cursorEvery = 50 * time.Millisecond

// persistWatermark writes the applied low watermark to intake_cursor as it
// moves (coalescing: at most once per cursorEvery), and a last time when
// stopping.
func (e *Engine) persistWatermark(ctx context.Context, wm *watermark, persisted int64) {
	write := func(c context.Context) {
		if mark := wm.mark(); mark > persisted {
			if err := e.st.AdvanceCursor(c, mark); err != nil {
				if c.Err() == nil {
					e.log.Warn("persist intake cursor failed; retrying", "cursor", mark, "error", err)
				}
				return
			}
			persisted = mark
			e.m.Cursor.Set(float64(mark))
		}
	}
	final := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		write(fctx)
		cancel()
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			final()
			return
		case <-wm.changed:
		case <-time.After(time.Second): // retry after a failure
		}
		if d := cursorEvery - time.Since(last); d > 0 && !wait(ctx, d) {
			final()
			return
		}
		last = time.Now()
		write(ctx)
	}
}

// watermark tracks received events in stream order and yields the highest
// cursor below which every event is applied.
type watermark struct {
	mu       sync.Mutex
	low      int64
	inflight []int64 // cursors received and not yet below low, in order
	finished map[int64]bool
	changed  chan struct{}
}

func newWatermark(low int64) *watermark {
	return &watermark{low: low, finished: map[int64]bool{}, changed: make(chan struct{}, 1)}
}

// add records a received event (cursors arrive increasing).
func (w *watermark) add(c int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight = append(w.inflight, c)
}

// done records an applied (or rejected) event.
func (w *watermark) done(c int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished[c] = true
	moved := false
	for len(w.inflight) > 0 && w.finished[w.inflight[0]] {
		w.low = w.inflight[0]
		delete(w.finished, w.low)
		w.inflight = w.inflight[1:]
		moved = true
	}
	if moved {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *watermark) mark() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.low
}

// report logs and counts what ApplyRevision did, with the reference's log
// event names.
func (e *Engine) report(log *slog.Logger, rev event.Revision, res store.ApplyResult) {
	dec := res.Decision
	switch dec.Outcome {
	case route.Detected:
		e.m.Detected.WithLabelValues(string(rev.Status)).Inc()
		log.Info("detected new dispute", "initiator", rev.Initiator, "event_timestamp", rev.CreatedAt)
		if rev.InitiatorRaw != rev.Initiator {
			log.Warn("dispute event has no valid `initiator` tag; recorded as unknown", "initiator_tag", rev.InitiatorRaw)
		}
		if dec.Notify == message.TypeInitial && len(e.cfg.Solvers) == 0 {
			log.Warn("no solvers configured; dispute persisted but not notified")
		}
	case route.Duplicate:
		e.m.DuplicateSkips.Inc()
		log.Debug("duplicate_skip: dispute already recorded")
	case route.Stale:
		e.m.StaleRevisions.Inc()
		log.Info("stale revision ignored: a newer revision of this dispute was already applied", "created_at", rev.CreatedAt)
	}
	if dec.UnknownStatus {
		e.m.UnknownStatuses.Inc()
		log.Warn("dispatcher: skipping dispute event with unrecognised s= value", "note", dec.Note)
	}
	if dec.To != "" {
		e.m.Transitions.WithLabelValues(string(res.From), string(dec.To)).Inc()
		log.Info("state_transition", "from", string(res.From), "to", string(dec.To), "trigger", dec.Trigger)
		switch dec.To {
		case lifecycle.Taken:
			e.m.Assignments.Inc()
			solver := message.UnknownSolver
			if res.Dispute != nil && res.Dispute.AssignedSolver != nil {
				solver = *res.Dispute.AssignedSolver
			}
			log.Info("assignment_detected", "assigned_solver", solver)
		case lifecycle.Resolved:
			e.m.ResolvedExternally.Inc()
			log.Info("dispute_resolved_externally", "resolution_status", string(rev.Status))
		}
	} else if dec.Outcome == route.Applied && dec.Note != "" && !dec.UnknownStatus {
		log.Debug(dec.Note)
	}
	for _, sid := range res.SessionsClosed {
		e.m.SessionsSuperseded.Inc()
		log.Info("mediation_session_superseded", "session_id", sid, "reason", lifecycle.TriggerResolvedExternally)
	}
}

// ---- DM senders ----

// sender sends queued DMs until ctx ends.
func (e *Engine) sender(ctx context.Context) {
	for {
		var job *store.Job
		select {
		case <-ctx.Done():
			return
		case id := <-e.work:
			j, err := e.st.ClaimJob(ctx, id, e.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("claim notification job failed; the poller will retry it", "job_id", id, "error", err)
				}
				continue
			}
			job = j
		case j := <-e.claimed:
			job = &j
		case r := <-e.ready:
			r.job.QueuedSeconds += time.Since(r.at).Seconds()
			job = &r.job
		}
		for job != nil && ctx.Err() == nil {
			next, ok := e.process(ctx, *job)
			if !ok {
				break
			}
			job = e.claimNext(ctx, next)
		}
	}
}

// claimNext claims the following DM to the same solver about the same
// dispute (DMs of one dispute reach a solver in order), if there is one.
func (e *Engine) claimNext(ctx context.Context, id int64) *store.Job {
	if id == 0 {
		return nil
	}
	j, err := e.st.ClaimJob(ctx, id, e.cfg.Lease)
	if err != nil {
		return nil
	}
	return j
}

// process sends one DM and records the attempt. It returns the next
// pending DM of the same (dispute, solver) when known (0 otherwise), and
// false when no outcome was recorded (ctx ended, or the DM was handed back).
func (e *Engine) process(ctx context.Context, job store.Job) (int64, bool) {
	start := time.Now()
	outcome, errMsg, retryable := e.send(ctx, job)
	var retryIn time.Duration
	if outcome == store.OutcomeFailed && retryable && job.Attempts < e.cfg.SendAttempts {
		retryIn = e.cfg.RetryBase << min(job.Attempts-1, 10)
	}
	if outcome == "" {
		// Stopping mid-send (or the assignment body could not be kept):
		// hand the DM back so any replica retries it at once (same
		// idempotency key), instead of after the lease.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := e.st.ReleaseJob(rctx, job.ID); err != nil {
			e.log.Debug("release notification job failed; its lease will expire", "job_id", job.ID, "error", err)
		}
		return 0, false
	}
	// A DM relaygw answered for is recorded even when stopping (bounded),
	// so a restart does not wait for the lease to learn the outcome.
	var res store.CompleteResult
	var next int64
	record := func(c context.Context) (err error) {
		if outcome == store.OutcomeFailed {
			res, err = e.st.CompleteJob(c, job, outcome, errMsg, e.cfg.Now(), retryIn)
			if err == nil && !res.Rescheduled && !res.AlreadyDone {
				next = -1 // unknown: look it up
			}
			return err
		}
		cs, err := e.st.CompleteDelivered(c, []store.Delivered{{Job: job, Outcome: outcome}}, e.cfg.Now())
		if err == nil {
			res, next = cs[0].CompleteResult, cs[0].Next
		}
		return err
	}
	var err error
	if outcome == store.OutcomeFailed {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		err = record(rctx)
		cancel()
	} else {
		// The common case: recorded by the completer, together with the
		// DMs other senders finished meanwhile.
		var c store.Completed
		c, err = e.complete(job, outcome)
		res, next = c.CompleteResult, c.Next
	}
	if err != nil {
		e.log.Error("record notification failed; retrying", "attempt", 1, "job_id", job.ID, "error", err)
		if e.retry(ctx, "record notification", func() error { return record(ctx) }) != nil {
			return 0, false
		}
	}
	if next == -1 {
		next = 0
		if id, ok, err := e.st.NextJobFor(ctx, job.DisputeID, job.SolverPubkey); err == nil && ok {
			next = id
		}
	}
	if res.AlreadyDone {
		return next, true
	}
	if outcome != store.OutcomeSkipped {
		e.m.DetectToSent.Observe(job.QueuedSeconds + time.Since(start).Seconds())
	}
	log := e.log.With("dispute_id", job.DisputeID, "solver", job.SolverPubkey, "notif_type", job.NotifType, "job_id", job.ID)
	prefix := map[string]string{
		message.TypeInitial:        "notification",
		message.TypeRenotification: "renotification",
		message.TypeAssignment:     "assignment_notification",
	}[job.NotifType]
	switch outcome {
	case store.OutcomeSent:
		e.m.NotificationsSent.WithLabelValues(job.NotifType).Inc()
		log.Info(prefix+"_sent", "period", job.Period)
	case store.OutcomeFailed:
		e.m.NotificationsFailed.WithLabelValues(job.NotifType).Inc()
		if res.Rescheduled {
			log.Warn(prefix+"_failed", "period", job.Period, "attempt", job.Attempts, "retry_in", retryIn.String(), "error", errMsg)
		} else {
			log.Warn(prefix+"_failed", "period", job.Period, "attempt", job.Attempts, "error", errMsg)
		}
	case store.OutcomeSkipped:
		e.m.NotificationsSkipped.WithLabelValues(job.NotifType).Inc()
		log.Info(prefix+" skipped: the dispute is no longer "+string(lifecycle.Notified), "state", string(job.State))
	}
	if res.Transitioned {
		e.m.Transitions.WithLabelValues(string(lifecycle.New), string(lifecycle.Notified)).Inc()
		log.Info("state_transition", "from", string(lifecycle.New), "to", string(lifecycle.Notified),
			"trigger", lifecycle.TriggerInitialNotification)
		e.changes.Fire()
	}
	if res.BatchReachedNobody {
		switch {
		case job.NotifType == message.TypeRenotification:
			log.Warn("all re-notification sends failed; keeping last_notified_at so the next tick retries")
		case len(e.reachable) == 0:
			log.Warn("all initial notification sends failed; the dispute stays new and is not retried: no configured solver has a valid pubkey")
		default:
			log.Warn("all initial notification sends failed; the dispute stays new and the next tick retries (solvers with a valid pubkey only)")
		}
	}
	return next, true
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
func (e *Engine) complete(job store.Job, outcome string) (store.Completed, error) {
	c := &completion{item: store.Delivered{Job: job, Outcome: outcome}, done: make(chan completionResult, 1)}
	e.completions <- c
	r := <-c.done
	return r.c, r.err
}

// completer records the delivered DMs senders hand it, each transaction
// taking every DM that finished while the previous one was written (group
// commit: no added delay when idle, fewer transactions under load). It
// runs until completions is closed (after the senders stopped).
func (e *Engine) completer() {
	for first := range e.completions {
		batch := []*completion{first}
	more:
		for len(batch) < maxCompleteBatch {
			select {
			case c, ok := <-e.completions:
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
		cs, err := e.st.CompleteDelivered(ctx, items, e.cfg.Now())
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

// send makes one attempt. It returns the outcome, the error_message and
// whether a failure is worth retrying, or "" when ctx ended first or an
// assignment's body could not be kept (nothing recorded; the DM is handed
// back and the same idempotency key is used again).
func (e *Engine) send(ctx context.Context, job store.Job) (string, string, bool) {
	if job.NotifType == message.TypeRenotification && job.State != lifecycle.Notified {
		return store.OutcomeSkipped, "", false
	}
	recipient, err := normalizeSolver(job.SolverPubkey)
	if err != nil {
		return store.OutcomeFailed, message.InvalidPubkeyError(err.Error()), false
	}
	var body string
	if job.Body != nil {
		body = *job.Body
	} else {
		// First attempt of an assignment: the body is built now and kept,
		// so a retry under the same idempotency key sends the same bytes
		// even if Serbero's own take is recorded meanwhile (relaygw refuses
		// a key reused with another body).
		body, err = e.st.PinBody(ctx, job.ID, message.Assignment(job.DisputeID, job.AssignedSolver))
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("keep assignment DM body failed; the DM is handed back and retried",
					"dispute_id", job.DisputeID, "job_id", job.ID, "error", err)
			}
			return "", "", false
		}
	}
	callCtx, cancel := context.WithTimeout(ctx, e.cfg.SendTimeout)
	defer cancel()
	resp, err := e.rg.SendDirectMessage(callCtx, &relaygwv1.SendDirectMessageRequest{
		RecipientPubkey: recipient, Body: body, IdempotencyKey: job.IdempotencyKey,
	})
	if err != nil && ctx.Err() != nil {
		return "", "", false
	}
	if err != nil {
		st, _ := status.FromError(err)
		if st.Code() == codes.InvalidArgument && strings.Contains(strings.ToLower(st.Message()), "pubkey") {
			return store.OutcomeFailed, message.InvalidPubkeyError(st.Message()), false
		}
		return store.OutcomeFailed, message.SendFailedError(fmt.Sprintf("relaygw: %s: %s", st.Code(), st.Message())),
			st.Code() != codes.InvalidArgument
	}
	if resp.GetDelivered() {
		return store.OutcomeSent, "", false
	}
	return store.OutcomeFailed, message.SendFailedError(describeResults(resp.GetResults())), true
}

// normalizeSolver turns a configured solver pubkey (hex or npub) into
// lowercase hex, refusing what is not a valid x-only secp256k1 key.
func normalizeSolver(pk string) (string, error) {
	hex, err := config.NormalizePubkey(pk)
	if err != nil {
		return "", err
	}
	if !keys.ValidPubkey(hex) {
		return "", errors.New("not a valid secp256k1 x-only public key")
	}
	return hex, nil
}

func describeResults(rs []*relaygwv1.PublishResult) string {
	if len(rs) == 0 {
		return "no relay accepted the gift wrap (no relay answered)"
	}
	parts := make([]string, 0, len(rs))
	for _, r := range rs {
		p := r.GetRelayUrl() + ": " + strings.ToLower(strings.TrimPrefix(r.GetOutcome().String(), "PUBLISH_OUTCOME_"))
		if r.GetMessage() != "" {
			p += " (" + r.GetMessage() + ")"
		}
		parts = append(parts, p)
	}
	return "no relay accepted the gift wrap: " + strings.Join(parts, "; ")
}

// poller claims DMs no local sender was told about: those of a crashed
// replica, deferred assignments that became due, overflow.
func (e *Engine) poller(ctx context.Context) {
	t := time.NewTicker(e.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.poke:
		}
		for ctx.Err() == nil {
			jobs, err := e.st.ClaimDueJobs(ctx, e.cfg.Workers, e.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					e.log.Warn("scan notification outbox failed", "error", err)
				}
				break
			}
			for _, j := range jobs {
				select {
				case e.claimed <- j:
				case <-ctx.Done():
					return
				}
			}
			if len(jobs) < e.cfg.Workers {
				break
			}
		}
	}
}

// ---- re-notification ----

// renotifier is the phase 2 timer: every CheckInterval (first scan one
// interval after start) it claims the due batches and queues their DMs.
func (e *Engine) renotifier(ctx context.Context) {
	t := time.NewTicker(e.cfg.CheckInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.Tick(ctx)
	}
}

// Tick runs one re-notification cycle now.
func (e *Engine) Tick(ctx context.Context) {
	e.m.RenotificationTicks.Inc()
	now := e.cfg.Now()
	total := 0
	const batch = 200
	for ctx.Err() == nil {
		// Re-notifications go to every configured solver (spec 10 §A8: an
		// invalid pubkey gets its failed row each period); an initial retry
		// only to those a DM can reach.
		due, err := e.st.ClaimDue(ctx, now, e.cfg.RenotifyAfter, e.cfg.Solvers, e.reachable, batch)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("renotification cycle failed", "error", err)
			}
			return
		}
		for _, b := range due {
			e.m.RenotificationBatches.WithLabelValues(b.NotifType).Inc()
			e.log.Info("renotification due", "dispute_id", b.DisputeID, "notif_type", b.NotifType, "period", b.Period, "solvers", len(b.JobIDs))
			e.dispatch(b.JobIDs)
		}
		total += len(due)
		if len(due) < batch {
			break
		}
	}
	e.log.Info("renotification_tick: scanned for unattended disputes", "due", total,
		"renotification_seconds", int64(e.cfg.RenotifyAfter/time.Second))
}

// ---- gauge ----

func (e *Engine) gauge(ctx context.Context) {
	for {
		if counts, err := e.st.StateCounts(ctx); err == nil {
			for st, n := range counts {
				e.m.Disputes.WithLabelValues(string(st)).Set(float64(n))
			}
		} else if ctx.Err() == nil {
			e.log.Debug("refresh dispute gauge failed", "error", err)
		}
		if !wait(ctx, e.cfg.GaugeInterval) {
			return
		}
	}
}

// ---- change feed ----

// listen relays Postgres NOTIFYs on the change channel to the broadcast, so
// WatchDisputes streams of every replica wake up at once.
func (e *Engine) listen(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := e.listenOnce(ctx)
		e.changes.Fire() // re-poll whatever was missed while not listening
		if ctx.Err() != nil {
			return
		}
		e.log.Debug("change listener interrupted; reconnecting", "error", err)
		if !wait(ctx, delay) {
			return
		}
		delay = backoff(delay, 5*time.Second)
	}
}

func (e *Engine) listenOnce(ctx context.Context) error {
	conn, err := e.st.Pool().Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "LISTEN "+store.ChangesChannel); err != nil {
		return err
	}
	defer func() {
		// Leave the connection clean for the pool.
		unl, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if _, err := conn.Exec(unl, "UNLISTEN *"); err != nil {
			conn.Conn().Close(unl) // the pool drops a closed conn
		}
	}()
	e.changes.Fire()
	for {
		if _, err := conn.Conn().WaitForNotification(ctx); err != nil {
			return err
		}
		e.changes.Fire()
	}
}

// ---- Serbero's own takes ----

// TakeStage is a step of Serbero taking a dispute.
type TakeStage int

// The stages mediationsvc reports.
const (
	TakeIntent TakeStage = iota + 1
	TakeSucceeded
	TakeFailed
)

// RecordTake records a stage of Serbero's own take of a dispute (see
// store.RecordTakeIntent / RecordTakeOutcome).
func (e *Engine) RecordTake(ctx context.Context, disputeID string, stage TakeStage, ttl time.Duration) (store.Dispute, error) {
	switch stage {
	case TakeIntent:
		return e.st.RecordTakeIntent(ctx, disputeID, e.cfg.Now().Add(ttl))
	case TakeSucceeded, TakeFailed:
		pk := ""
		if stage == TakeSucceeded {
			var err error
			if pk, err = e.serberoPubkey(ctx); err != nil {
				return store.Dispute{}, err
			}
		}
		d, released, err := e.st.RecordTakeOutcome(ctx, disputeID, pk)
		if err != nil {
			return d, err
		}
		if pk != "" {
			e.log.Info("serbero take recorded", "dispute_id", disputeID, "assigned_solver", pk)
			e.changes.Fire()
		}
		e.dispatch(released)
		return d, nil
	default:
		return store.Dispute{}, fmt.Errorf("unknown take stage %d", stage)
	}
}

func (e *Engine) serberoPubkey(ctx context.Context) (string, error) {
	e.idMu.Lock()
	defer e.idMu.Unlock()
	if e.serberoPK != "" {
		return e.serberoPK, nil
	}
	resp, err := e.rg.GetIdentity(ctx, &relaygwv1.GetIdentityRequest{})
	if err != nil {
		return "", fmt.Errorf("get serbero identity from relaygw: %w", err)
	}
	e.serberoPK = resp.GetPubkeyHex()
	return e.serberoPK, nil
}

// Package outbox delivers intakesvc's DM outbox (intake_notification_jobs)
// through relaygw: a pool of senders, the poller that claims what no local
// sender was told about, and the completer that records delivered DMs in
// group-committed batches. See docs/intake.md#the-outbox.
//
// Guarantees:
//   - No duplicate DM: each job has a stable relaygw idempotency key, so a
//     re-send after a crash, a lease expiry or a retry returns the first
//     outcome (or republishes the very same gift wrap).
//   - A solver receives one dispute's DMs in order: a job is claimable only
//     when no earlier job of the same (dispute, solver) is pending, and the
//     sender that finishes one goes on with the next.
//   - Several replicas: jobs are claimed with leases (FOR UPDATE SKIP
//     LOCKED); a DM whose sender died is sent by any replica under the
//     same key once its lease expires, or at once when the sender handed
//     it back while stopping.
//   - Failed attempts are retried with backoff up to SendAttempts, unless
//     relaygw says the failure is permanent (an invalid recipient, a
//     refused request): then the failure is recorded once.
package outbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Config tunes the outbox. Zero values take the defaults noted.
type Config struct {
	// Workers is the number of concurrent senders (default 32: more DMs in
	// flight make bigger batches, in relaygw's outbox insert and in the
	// completer, so fewer statements per DM).
	Workers int
	// Lease is how long a claimed DM is reserved for its sender before any
	// replica may retry it (default and minimum: twice SendTimeout).
	Lease time.Duration
	// SendTimeout bounds one SendDirectMessage call (default 30 s).
	SendTimeout time.Duration
	// PollInterval is how often the outbox is scanned for DMs no local
	// sender was told about (default 1 s).
	PollInterval time.Duration
	// SendAttempts is how many times one DM is tried when relays do not
	// accept it (default 5; a permanent failure is never retried).
	// Retries reuse the idempotency key: relaygw republishes the same gift
	// wrap.
	SendAttempts int
	// RetryBase is the delay before the first retry, doubled after each
	// (default 1 s).
	RetryBase time.Duration
	// NobodyReachable says no configured solver has a valid pubkey (only
	// for the log of an initial batch that reached nobody).
	NobodyReachable bool
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
	if c.SendAttempts <= 0 {
		c.SendAttempts = 5
	}
	if c.RetryBase <= 0 {
		c.RetryBase = time.Second
	}
}

// Deps are what the outbox works with.
type Deps struct {
	Store   *store.Store
	Relaygw relaygwv1.RelayGatewayServiceClient
	Metrics *metrics.Metrics
	// Changes is fired when a delivered DM moves a dispute (new ->
	// notified), for the change-feed readers of this replica.
	Changes *changefeed.Broadcast
	Logger  *slog.Logger
	Clock   clockwork.Clock
}

// Outbox sends queued DMs.
type Outbox struct {
	cfg     Config
	log     *slog.Logger
	clock   clockwork.Clock
	st      *store.Store
	rg      relaygwv1.RelayGatewayServiceClient
	m       *metrics.Metrics
	changes *changefeed.Broadcast

	work    chan int64     // job ids to claim and send
	claimed chan store.Job // jobs already claimed by the poller
	ready   chan readyJob  // jobs leased when they were queued
	poke    chan struct{}  // wakes the poller
	// completions feeds the completer, which records delivered DMs in
	// batches (one transaction for whatever senders finished meanwhile).
	completions chan *completion
}

// readyJob is a job leased with its insert, waiting for a sender since at.
type readyJob struct {
	job store.Job
	at  time.Time
}

// New builds an outbox; nothing runs before Run.
func New(cfg Config, deps Deps) *Outbox {
	cfg.defaults()
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
	return &Outbox{
		cfg: cfg, log: log.With("unit", "outbox"), clock: clock, st: deps.Store, rg: deps.Relaygw, m: deps.Metrics,
		changes:     changes,
		work:        make(chan int64, 4096),
		claimed:     make(chan store.Job, cfg.Workers),
		ready:       make(chan readyJob, 4096),
		poke:        make(chan struct{}, 1),
		completions: make(chan *completion, cfg.Workers),
	}
}

// Lease is how long a job leased to the outbox stays reserved.
func (o *Outbox) Lease() time.Duration { return o.cfg.Lease }

// Run sends until ctx ends: the senders, the poller and the completer.
// Senders record what relaygw answered even when stopping; then the
// completer ends, and leased DMs nobody sent are handed back, so any
// replica sends them at once instead of after the lease.
func (o *Outbox) Run(ctx context.Context) {
	completerDone := make(chan struct{})
	go func() {
		defer close(completerDone)
		o.completer()
	}()
	var wg sync.WaitGroup
	for range o.cfg.Workers {
		wg.Go(func() { o.sender(ctx) })
	}
	wg.Go(func() { o.poller(ctx) })
	wg.Wait()
	close(o.completions)
	<-completerDone
	o.ReleaseWaiting(ctx)
}

// Dispatch hands freshly queued jobs to local senders without blocking
// (the poller picks up whatever does not fit).
func (o *Outbox) Dispatch(ids []int64) {
	for _, id := range ids {
		select {
		case o.work <- id:
		default:
			o.Poke()
			return
		}
	}
}

// Poke wakes the poller.
func (o *Outbox) Poke() {
	select {
	case o.poke <- struct{}{}:
	default:
	}
}

// Ready hands jobs leased to this replica (ApplyRevision leases a new
// dispute's DMs) to the senders. It never blocks: when the senders are far
// behind (or stopping), the rest is handed back to the outbox, where the
// poller finds it.
func (o *Outbox) Ready(ctx context.Context, jobs []store.Job) {
	now := o.clock.Now()
	for i, j := range jobs {
		select {
		case o.ready <- readyJob{job: j, at: now}:
			continue
		default:
		}
		ids := make([]int64, 0, len(jobs)-i)
		for _, j := range jobs[i:] {
			ids = append(ids, j.ID)
		}
		o.release(ctx, ids)
		o.Poke()
		return
	}
}

// release gives back leases (bounded, even when ctx ended).
func (o *Outbox) release(ctx context.Context, ids []int64) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := o.st.ReleaseJobs(rctx, ids); err != nil {
		o.log.Debug("release notification jobs failed; their leases will expire", "jobs", len(ids), "error", err)
	}
}

// ReleaseWaiting gives back the leases of jobs still waiting for a sender
// (the process is stopping). Run does it when it ends; call it again once
// every unit that hands jobs over (Ready) has stopped.
func (o *Outbox) ReleaseWaiting(ctx context.Context) {
	var ids []int64
	for {
		select {
		case r := <-o.ready:
			ids = append(ids, r.job.ID)
			continue
		case j := <-o.claimed:
			ids = append(ids, j.ID)
			continue
		default:
		}
		break
	}
	if len(ids) > 0 {
		o.release(ctx, ids)
	}
}

// poller claims DMs no local sender was told about: those of a crashed
// replica, deferred assignments that became due, overflow.
func (o *Outbox) poller(ctx context.Context) {
	t := o.clock.NewTicker(o.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
		case <-o.poke:
		}
		for ctx.Err() == nil {
			jobs, err := o.st.ClaimDueJobs(ctx, o.cfg.Workers, o.cfg.Lease)
			if err != nil {
				if ctx.Err() == nil {
					o.log.Warn("scan notification outbox failed", "error", err)
				}
				break
			}
			for i, j := range jobs {
				select {
				case o.claimed <- j:
				case <-ctx.Done():
					// Stopping: hand back what no sender took.
					ids := make([]int64, 0, len(jobs)-i)
					for _, j := range jobs[i:] {
						ids = append(ids, j.ID)
					}
					o.release(ctx, ids)
					return
				}
			}
			if len(jobs) < o.cfg.Workers {
				break
			}
		}
	}
}

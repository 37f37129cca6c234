package dispatcher

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/pkg/retry"
)

// minWait is the shortest sleep between claims when a row is due but was
// not claimable (another replica was locking it), so the loop never spins.
const minWait = 10 * time.Millisecond

// Run dispatches until ctx is cancelled, then lets in-flight handoffs
// settle (a shutdown interrupts their sends; each is recorded, or returned
// to the queue at once) and returns nil.
//
// It wakes on a notification on handoff.Channel (pkg/pglisten: one
// dedicated connection, reconnected with backoff when lost, and a wake-up
// after every reconnection), when a worker frees up while more rows may be
// due, when the next parked row or claim deadline comes due, and at the
// latest every PollInterval (jittered ±20 %): notifications are hints, the
// poll is the guarantee. Each replica claims only as many rows as it has
// free workers, so rows are spread over replicas and none waits behind a
// busy replica's backlog.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("phase4_dispatcher_loop_started",
		"dispatch_interval_seconds", d.opts.PollInterval.Seconds(),
		"fallback_to_all_solvers", d.opts.FallbackToAllSolvers,
		"claim_timeout_seconds", d.opts.ClaimTimeout.Seconds(),
		"owner", d.opts.Owner, "workers", d.opts.Workers)
	d.WakeUnroutable(ctx)

	listener, err := pglisten.New(pglisten.Options{
		ConnConfig: d.opts.Pool.Config().ConnConfig, ApplicationName: ListenerApplicationName,
		Logger: d.log, Clock: d.clock,
	})
	if err != nil {
		return fmt.Errorf("escalation dispatcher: %w", err)
	}
	sub, err := listener.Subscribe(handoff.Channel)
	if err != nil {
		return fmt.Errorf("escalation dispatcher: %w", err)
	}
	defer sub.Close()
	bgCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); _ = listener.Run(bgCtx) }()
	go func() { defer bg.Done(); d.heartbeat(bgCtx) }()
	readyWait := d.clock.NewTimer(listenReadyWait)
	select { // start claiming once LISTEN is in place (or without it, polling)
	case <-listener.Ready():
	case <-readyWait.Chan():
		d.log.Warn("phase4: LISTEN not ready; polling until it is")
	case <-ctx.Done():
	}
	readyWait.Stop()

	var (
		workers   sync.WaitGroup
		done      = make(chan struct{}, d.opts.Workers)
		inflight  int
		timer     = d.clock.NewTimer(time.Hour)
		polled    = true // rescue on the first pass
		errDelay  = retry.Exponential(100*time.Millisecond, 5*time.Second)
		saturated bool
	)
	defer timer.Stop()
	for ctx.Err() == nil {
		if polled {
			d.log.Debug("phase4_dispatcher_tick", "inflight", inflight)
			d.rescue(ctx)
			polled = false
		}
		for drained := false; !drained; { // count every worker that finished meanwhile
			select {
			case <-done:
				inflight--
			default:
				drained = true
			}
		}
		var wait time.Duration
		free := d.opts.Workers - inflight
		saturated = free <= 0
		if !saturated {
			claimed, err := d.claim(ctx, free)
			switch {
			case err != nil:
				wait = min(errDelay.NextBackOff(), d.opts.PollInterval)
			default:
				errDelay.Reset()
				for i := range claimed {
					inflight++
					workers.Add(1)
					go func() {
						defer workers.Done()
						d.Process(ctx, &claimed[i])
						done <- struct{}{}
					}()
				}
				saturated = len(claimed) == free
				if !saturated {
					wait = d.nextWait(ctx)
				}
			}
		}
		if saturated {
			wait = d.pollWait() // keep rescuing while busy
		}
		timer.Reset(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				break waiting
			case <-done:
				inflight--
				if saturated {
					break waiting // a worker is free and more rows may be due
				}
			case <-sub.C():
				if !saturated {
					break waiting
				}
			case <-timer.Chan():
				polled = true
				if !saturated {
					break waiting
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.Chan():
			default:
			}
		}
	}
	workers.Wait()
	stopBg()
	bg.Wait()
	d.log.Info("phase4_dispatcher_loop_stopped", "owner", d.opts.Owner)
	return nil
}

// listenReadyWait is how long Run waits for its LISTEN before it starts
// claiming anyway (polling covers the gap).
const listenReadyWait = 5 * time.Second

// WakeUnroutable makes handoffs parked as unroutable due now when this
// replica's configuration can route (a configuration change dispatches
// them at once, docs/escalation.md#parking-and-backoff). Run calls it at
// start.
func (d *Dispatcher) WakeUnroutable(ctx context.Context) {
	if !d.Routable() {
		return
	}
	if n, err := handoff.WakeParked(ctx, d.opts.Pool, handoff.ParkUnroutable); err != nil {
		d.log.Warn("phase4: could not wake handoffs parked as unroutable", "error", err)
	} else if n > 0 {
		d.log.Info("phase4: configuration is routable; handoffs parked as unroutable are due again", "count", n)
	}
}

// nextWait is how long to sleep before claiming again: the jittered poll
// interval, or less when a parked row or a claim deadline comes due first.
func (d *Dispatcher) nextWait(ctx context.Context) time.Duration {
	wait := d.pollWait()
	next, err := handoff.NextDueIn(ctx, d.opts.Pool)
	if err != nil || next < 0 {
		return wait
	}
	return max(min(wait, next), minWait)
}

// pollWait is the poll interval jittered by ±20 %.
func (d *Dispatcher) pollWait() time.Duration {
	return time.Duration(float64(d.opts.PollInterval) * (0.8 + 0.4*rand.Float64()))
}

// heartbeat extends this replica's claims while it lives, so a handoff
// that takes long (many recipients, slow relays) is not rescued from a
// live replica; a dead replica stops extending and its claims expire.
func (d *Dispatcher) heartbeat(ctx context.Context) {
	t := d.clock.NewTicker(max(d.opts.ClaimTimeout/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.Chan():
			if _, err := handoff.Extend(ctx, d.opts.Pool, d.opts.Owner, d.opts.ClaimTimeout); err != nil && ctx.Err() == nil {
				d.log.Warn("phase4: could not extend handoff claims", "error", err)
			}
		}
	}
}

// ListenerApplicationName is the application_name of the LISTEN
// connection (to find it in pg_stat_activity).
const ListenerApplicationName = "serbero-escalationsvc-listen"

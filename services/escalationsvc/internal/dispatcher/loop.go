package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"

	"github.com/serbero/serbero/pkg/handoff"
)

// minWait is the shortest sleep between claims when a row is due but was
// not claimable (another replica was locking it), so the loop never spins.
const minWait = 10 * time.Millisecond

// Run dispatches until ctx is cancelled, then lets in-flight handoffs
// settle (a shutdown interrupts their sends; each is recorded, or returned
// to the queue at once) and returns nil.
//
// It wakes on a notification on handoff.Channel (a dedicated connection,
// reconnected with backoff when lost), when a worker frees up while more
// rows may be due, when the next parked row or claim deadline comes due,
// and at the latest every PollInterval (jittered ±20 %): notifications are
// hints, the poll is the guarantee. Each replica claims only as many rows
// as it has free workers, so rows are spread over replicas and none waits
// behind a busy replica's backlog.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.log.Info("phase4_dispatcher_loop_started",
		"dispatch_interval_seconds", d.opts.PollInterval.Seconds(),
		"fallback_to_all_solvers", d.opts.FallbackToAllSolvers,
		"claim_timeout_seconds", d.opts.ClaimTimeout.Seconds(),
		"owner", d.opts.Owner, "workers", d.opts.Workers)
	d.WakeUnroutable(ctx)

	bgCtx, stopBg := context.WithCancel(ctx)
	var bg sync.WaitGroup
	wake := make(chan struct{}, 1)
	ready := make(chan struct{})
	bg.Add(2)
	go func() { defer bg.Done(); d.listen(bgCtx, wake, ready) }()
	go func() { defer bg.Done(); d.heartbeat(bgCtx) }()
	select { // start claiming once LISTEN is in place (or without it, polling)
	case <-ready:
	case <-time.After(5 * time.Second):
		d.log.Warn("phase4: LISTEN not ready; polling until it is")
	case <-ctx.Done():
	}

	var (
		workers   sync.WaitGroup
		done      = make(chan struct{}, d.opts.Workers)
		inflight  int
		timer     = time.NewTimer(time.Hour)
		polled    = true // rescue on the first pass
		errDelay  = 100 * time.Millisecond
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
				wait = min(errDelay, d.opts.PollInterval)
				errDelay = min(errDelay*2, 5*time.Second)
			default:
				errDelay = 100 * time.Millisecond
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
			case <-wake:
				if !saturated {
					break waiting
				}
			case <-timer.C:
				polled = true
				if !saturated {
					break waiting
				}
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
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

// WakeUnroutable makes handoffs parked as unroutable due now when this
// replica's configuration can route (spec 10 §B8: a later configuration
// change dispatches them on the next cycle). Run calls it at start.
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
	t := time.NewTicker(max(d.opts.ClaimTimeout/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := handoff.Extend(ctx, d.opts.Pool, d.opts.Owner, d.opts.ClaimTimeout); err != nil && ctx.Err() == nil {
				d.log.Warn("phase4: could not extend handoff claims", "error", err)
			}
		}
	}
}

// listen keeps a LISTEN connection on handoff.Channel and turns every
// notification into a (coalesced) wake-up. It closes ready once listening
// for the first time; after every (re)connect it wakes the loop once, so
// whatever committed while it was not listening is claimed.
func (d *Dispatcher) listen(ctx context.Context, wake chan<- struct{}, ready chan<- struct{}) {
	backoff := 100 * time.Millisecond
	first := true
	for ctx.Err() == nil {
		err := d.listenOnce(ctx, wake, func() {
			if first {
				first = false
				close(ready)
			}
			backoff = 100 * time.Millisecond
			signal(wake)
		})
		if ctx.Err() != nil {
			return
		}
		d.log.Warn("phase4: LISTEN connection lost; polling until it is back", "error", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/2+1)):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
}

// ListenerApplicationName is the application_name of the LISTEN
// connection (to find it in pg_stat_activity).
const ListenerApplicationName = "serbero-escalationsvc-listen"

// listenIdle is how long the listener waits for a notification before it
// checks its connection with a ping (a half-open TCP connection would
// otherwise block it forever).
const listenIdle = 30 * time.Second

func (d *Dispatcher) listenOnce(ctx context.Context, wake chan<- struct{}, listening func()) error {
	cfg := d.opts.Pool.Config().ConnConfig.Copy()
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	cfg.RuntimeParams["application_name"] = ListenerApplicationName
	// A timed-out wait only sets a deadline; the connection stays usable.
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.DeadlineContextWatcherHandler{Conn: c.Conn()}
	}
	connectCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, err := pgx.ConnectConfig(connectCtx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(closeCtx)
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+handoff.Channel); err != nil {
		return err
	}
	listening()
	for {
		waitCtx, cancel := context.WithTimeout(ctx, listenIdle)
		_, err := conn.WaitForNotification(waitCtx)
		cancel()
		switch {
		case err == nil:
			signal(wake)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pingCtx)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}

func signal(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// Package retry holds the two helpers every retry loop in Serbero shares:
// an exponential backoff with jitter (github.com/cenkalti/backoff/v5 with
// Serbero's defaults) and a wait that ends early when the context does, on
// an injectable clock. Loops that need more (a maximum number of tries, a
// permanent-error class) use backoff/v5 directly. See
// docs/architecture.md#shared-infrastructure.
package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"
)

// Jitter is the randomization factor of Exponential: every wait is the
// nominal one ±20 %, so replicas that failed together do not retry in
// lockstep.
const Jitter = 0.2

// Exponential returns a backoff starting at initial and doubling up to max,
// each wait jittered by Jitter. Call Reset after a success. It is not safe
// for concurrent use (one per loop).
func Exponential(initial, max time.Duration) *backoff.ExponentialBackOff {
	b := &backoff.ExponentialBackOff{
		InitialInterval:     initial,
		RandomizationFactor: Jitter,
		Multiplier:          2,
		MaxInterval:         max,
	}
	b.Reset()
	return b
}

// Sleep waits d on clock (nil: the real clock). It returns false, at once,
// when ctx ends first.
func Sleep(ctx context.Context, clock clockwork.Clock, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	if d <= 0 {
		return true
	}
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	t := clock.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.Chan():
		return true
	}
}

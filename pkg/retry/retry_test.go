package retry_test

import (
	"context"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/retry"
)

func TestExponential(t *testing.T) {
	t.Parallel()
	b := retry.Exponential(100*time.Millisecond, time.Second)
	ms := time.Millisecond
	nominal := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}
	for i, n := range nominal {
		got := b.NextBackOff()
		lo, hi := time.Duration(float64(n)*(1-retry.Jitter)), time.Duration(float64(n)*(1+retry.Jitter))
		require.True(t, got >= lo && got <= hi, "wait %d: %s not within %s..%s", i, got, lo, hi)
	}
	b.Reset()
	require.LessOrEqual(t, b.NextBackOff(), 120*time.Millisecond, "Reset starts over")
}

func TestSleep(t *testing.T) {
	t.Parallel()
	clock := clockwork.NewFakeClock()
	done := make(chan bool)
	go func() { done <- retry.Sleep(t.Context(), clock, time.Minute) }()
	require.NoError(t, clock.BlockUntilContext(t.Context(), 1))
	clock.Advance(time.Minute)
	require.True(t, <-done)

	ctx, cancel := context.WithCancel(t.Context())
	go func() { done <- retry.Sleep(ctx, clock, time.Hour) }()
	require.NoError(t, clock.BlockUntilContext(t.Context(), 1))
	cancel()
	require.False(t, <-done, "ended by the context")

	require.False(t, retry.Sleep(ctx, clock, 0), "an ended context wins even over no wait")
	require.True(t, retry.Sleep(t.Context(), nil, 0))
}

// Package gauge keeps the per-state dispute gauge
// (serbero_intakesvc_disputes{state}) current: it counts the whole
// database's disputes per lifecycle state every interval.
package gauge

import (
	"context"
	"log/slog"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Run refreshes m.Disputes from st now and every interval until ctx ends.
func Run(ctx context.Context, st *store.Store, m *metrics.Metrics, interval time.Duration, clock clockwork.Clock, log *slog.Logger) {
	for {
		Refresh(ctx, st, m, log)
		if !retry.Sleep(ctx, clock, interval) {
			return
		}
	}
}

// Refresh sets m.Disputes from one count (a failure is logged at debug and
// leaves the gauge as it was).
func Refresh(ctx context.Context, st *store.Store, m *metrics.Metrics, log *slog.Logger) {
	counts, err := st.StateCounts(ctx)
	if err != nil {
		if ctx.Err() == nil && log != nil {
			log.Debug("refresh dispute gauge failed", "error", err)
		}
		return
	}
	for state, n := range counts {
		m.Disputes.WithLabelValues(string(state)).Set(float64(n))
	}
}

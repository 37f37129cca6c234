package gauge_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/gauge"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

func TestRefreshCountsEveryState(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	ctx := context.Background()
	for _, d := range []struct{ id, to string }{{"a", ""}, {"b", "resolved"}, {"c", "taken"}} {
		_, err := st.ApplyRevision(ctx, event.Revision{EventID: "e-" + d.id, Pubkey: "m", CreatedAt: 1, DisputeID: d.id,
			Status: "initiated", Initiator: "buyer"}, time.Now(), func(*store.Dispute) store.Plan {
			return store.Plan{Insert: true, To: lifecycle.State(d.to), Trigger: "t"}
		})
		require.NoError(t, err)
	}
	m := metrics.New(nil)
	gauge.Refresh(ctx, st, m, nil)
	for state, want := range map[string]float64{"new": 1, "notified": 0, "taken": 1, "waiting": 0, "escalated": 0, "resolved": 1} {
		require.Equal(t, want, testutil.ToFloat64(m.Disputes.WithLabelValues(state)), state)
	}
}

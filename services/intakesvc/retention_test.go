package intakesvc_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
)

// The retention job of a running replica removes change-feed rows older
// than the period, counts them, and a consumer resuming from before them
// gets a typed FAILED_PRECONDITION instead of a silent gap; the dispute
// itself and its history stay.
func TestRetentionKeepsTheFeedContract(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ss := e.solvers(1)
	cfg := e.config(pubkeys(ss)...)
	cfg.Retention = time.Hour
	cfg.RetentionInterval = 50 * time.Millisecond
	e.open("d-old", "buyer")
	s := e.start(cfg)
	e.waitState("d-old", "notified")
	e.waitCount(2, `SELECT count(*) FROM dispute_changes WHERE dispute_id = 'd-old'`)
	var first int64
	require.NoError(t, e.db.Pool.QueryRow(e.ctx, `SELECT min(id) FROM dispute_changes`).Scan(&first))
	_, err := e.db.Pool.Exec(e.ctx, `UPDATE dispute_changes SET changed_at = now() - interval '2 hours'`)
	require.NoError(t, err)
	e.waitCount(0, `SELECT count(*) FROM dispute_changes`)
	require.Eventually(t, func() bool {
		return testutil.ToFloat64(metric(t, s, "serbero_intakesvc_retention_rows_deleted_total", "table", "dispute_changes")) == 2
	}, wait, 10*time.Millisecond)

	stream, err := s.api.WatchDisputes(e.ctx, &intakesvcv1.WatchDisputesRequest{AfterCursor: first})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, intakesvcv1.WatchErrorReason_WATCH_ERROR_REASON_CURSOR_EXPIRED.String(), grpcclient.Reason(err))
	require.Equal(t, 1, e.count(`SELECT count(*) FROM dispute_state_transitions WHERE dispute_id = 'd-old'`))
	got, err := s.api.GetDispute(e.ctx, &intakesvcv1.GetDisputeRequest{DisputeId: "d-old"})
	require.NoError(t, err)
	require.Equal(t, intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED, got.GetDispute().GetLifecycleState())
}

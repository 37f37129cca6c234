package outbox_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// refusing is a relaygw whose SendDirectMessage fails with a scripted error
// (returned through the production error boundary, so a reason travels as
// relaygw's does), then, after its failures, delivers.
type refusing struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer
	mu       sync.Mutex
	err      error
	failures int
	calls    int
}

func (r *refusing) SendDirectMessage(context.Context, *relaygwv1.SendDirectMessageRequest) (*relaygwv1.SendDirectMessageResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.calls <= r.failures {
		return nil, r.err
	}
	return &relaygwv1.SendDirectMessageResponse{Delivered: true, EventId: "wrap"}, nil
}

func (r *refusing) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls
}

func startRefusing(t *testing.T, r *refusing) relaygwv1.RelayGatewayServiceClient {
	t.Helper()
	log, _ := logtest.New()
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second})
	require.NoError(t, err)
	relaygwv1.RegisterRelayGatewayServiceServer(srv.GRPC(), r)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Start(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return relaygwv1.NewRelayGatewayServiceClient(conn)
}

func reason(err error, r relaygwv1.SendErrorReason) error { return apperr.WithReason(err, r.String()) }

// relaygw's typed reason, not its message, decides: a refusal whose text
// never says "pubkey" but whose reason is INVALID_RECIPIENT is the
// reference's invalid pubkey; any other permanent reason is one failed row;
// a transient one (or a failure without reason that is not
// INVALID_ARGUMENT) is retried under the same key until delivered.
func TestRelaygwReasonsDecideRetries(t *testing.T) {
	t.Parallel()
	const solver = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	cases := []struct {
		name     string
		err      error
		failures int
		calls    int    // SendDirectMessage calls in all
		rows     string // the notifications rows, in order
		prefix   string // error_message of the first row
	}{
		{"invalid recipient", reason(apperr.InvalidArgument("recipient refused"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_RECIPIENT),
			9, 1, "failed", "invalid pubkey: recipient refused"},
		{"idempotency conflict", reason(apperr.InvalidArgument("key already used"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_IDEMPOTENCY_CONFLICT),
			9, 1, "failed", "notification error: gift-wrap send failed: relaygw: InvalidArgument: key already used"},
		{"pubkey in the text is not a reason", reason(apperr.InvalidArgument("body mentions a pubkey"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_INVALID_BODY),
			9, 1, "failed", "notification error: gift-wrap send failed: relaygw: InvalidArgument: body mentions a pubkey"},
		{"store unavailable", reason(apperr.Unavailable("store down"), relaygwv1.SendErrorReason_SEND_ERROR_REASON_STORE_UNAVAILABLE),
			2, 3, "failed,failed,sent", "notification error: gift-wrap send failed: relaygw: Unavailable: store down"},
		{"internal without a reason", apperr.New(apperr.KindInternal, "boom"), 1, 2, "failed,sent",
			"notification error: gift-wrap send failed: relaygw: Internal: internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := pgdbtest.NewDB(t)
			st := store.New(db.Pool)
			r := &refusing{err: tc.err, failures: tc.failures}
			rg := startRefusing(t, r)
			log, logs := logtest.New()
			out := outbox.New(outbox.Config{PollInterval: 20 * time.Millisecond, RetryBase: time.Millisecond, SendAttempts: 10},
				outbox.Deps{Store: st, Relaygw: rg, Metrics: metrics.New(prometheus.NewRegistry()), Logger: log})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				out.Run(ctx)
			}()
			t.Cleanup(func() {
				cancel()
				<-done
				if t.Failed() {
					t.Logf("logs:\n%s", logs.String())
				}
			})
			res, err := intake.Apply(ctx, st, event.Revision{EventID: "e1", Pubkey: "m", CreatedAt: 1, DisputeID: "d",
				Status: "initiated", Initiator: "buyer"}, intake.Input{Solvers: []string{solver}, Now: time.Now(), Lease: out.Lease()})
			require.NoError(t, err)
			out.Ready(ctx, res.Claimed)
			waitCount(t, db.Pool, 0, `SELECT count(*) FROM intake_notification_jobs WHERE done_at IS NULL`)
			var rows, first string
			require.NoError(t, db.Pool.QueryRow(ctx, `SELECT string_agg(status, ',' ORDER BY id),
				(array_agg(COALESCE(error_message, '') ORDER BY id))[1] FROM notifications`).Scan(&rows, &first))
			require.Equal(t, tc.rows, rows)
			require.Equal(t, tc.prefix, first)
			require.Equal(t, tc.calls, r.count())
		})
	}
}

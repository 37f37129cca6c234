package server_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/server"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
	"github.com/serbero/serbero/services/intakesvc/internal/take"
)

type api struct {
	db      *pgdbtest.DB
	st      *store.Store
	changes *changefeed.Broadcast
	client  intakesvcv1.IntakeServiceClient
	srv     *grpcserver.Server
}

// serve runs the handlers behind the production chain (error boundary
// included) on a real database.
func serve(t *testing.T) *api {
	t.Helper()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	changes := changefeed.NewBroadcast()
	log, _ := logtest.New()
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second})
	require.NoError(t, err)
	intakesvcv1.RegisterIntakeServiceServer(srv.GRPC(), server.New(st, take.New(take.Deps{Store: st}), changes, nil))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv.Start(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		srv.Stop()
	})
	return &api{db: db, st: st, changes: changes, client: intakesvcv1.NewIntakeServiceClient(conn), srv: srv}
}

func (a *api) record(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		d := fmt.Sprintf("d%02d", i)
		_, err := a.st.ApplyRevision(context.Background(), event.Revision{EventID: "e-" + d, Pubkey: "m", CreatedAt: 1, DisputeID: d,
			Status: "initiated", Initiator: "buyer"}, time.Now(), func(*store.Dispute) store.Plan { return store.Plan{Insert: true} })
		require.NoError(t, err)
	}
	a.changes.Fire()
}

// A consumer resuming from a cursor older than what retention kept is
// told so, with a typed reason, instead of silently missing changes; a
// named consumer's cursor is recorded; the stream ends when the server
// ends its streams.
func TestWatchDisputesCursorContract(t *testing.T) {
	t.Parallel()
	a := serve(t)
	ctx := context.Background()
	a.record(t, 6)
	_, err := a.db.Pool.Exec(ctx, `UPDATE dispute_changes SET changed_at = now() - interval '1 year' WHERE id <= (SELECT min(id) + 2 FROM dispute_changes)`)
	require.NoError(t, err)
	res, err := a.st.Prune(ctx, store.Prune{Table: store.RetainChanges, Before: time.Now().Add(-time.Hour), Limit: 100})
	require.NoError(t, err)
	require.EqualValues(t, 3, res.Deleted)
	horizon, err := a.st.ChangesHorizon(ctx)
	require.NoError(t, err)

	stream, err := a.client.WatchDisputes(ctx, &intakesvcv1.WatchDisputesRequest{AfterCursor: horizon - 1})
	require.NoError(t, err)
	_, err = stream.Recv()
	require.Equal(t, codes.FailedPrecondition, status.Code(err))
	require.Equal(t, intakesvcv1.WatchErrorReason_WATCH_ERROR_REASON_CURSOR_EXPIRED.String(), grpcclient.Reason(err))
	require.Contains(t, status.Convert(err).Message(), "resume with after_cursor 0")

	stream, err = a.client.WatchDisputes(ctx, &intakesvcv1.WatchDisputesRequest{AfterCursor: horizon, Consumer: "mediationsvc"})
	require.NoError(t, err)
	for i := range 3 {
		m, err := stream.Recv()
		require.NoError(t, err)
		require.Greater(t, m.GetCursor(), horizon+int64(i)-1)
	}
	var cursor int64
	require.NoError(t, a.db.Pool.QueryRow(ctx, `SELECT cursor FROM intake_feed_consumers WHERE consumer = 'mediationsvc'`).Scan(&cursor))
	require.Equal(t, horizon, cursor)
	from0, err := a.client.WatchDisputes(ctx, &intakesvcv1.WatchDisputesRequest{})
	require.NoError(t, err)
	m, err := from0.Recv()
	require.NoError(t, err, "0 reads from the oldest retained change")
	require.Equal(t, horizon+1, m.GetCursor())

	a.srv.EndStreams()
	_, err = stream.Recv()
	require.Equal(t, codes.Unavailable, status.Code(err))

	for _, bad := range []string{"Upper", "spa ce", strings.Repeat("a", 65)} {
		s, err := a.client.WatchDisputes(ctx, &intakesvcv1.WatchDisputesRequest{Consumer: bad})
		require.NoError(t, err)
		_, err = s.Recv()
		require.Equal(t, codes.InvalidArgument, status.Code(err), bad)
	}
}

func TestListQuarantinedEventsPages(t *testing.T) {
	t.Parallel()
	a := serve(t)
	ctx := context.Background()
	for i := range 3 {
		_, err := a.st.Quarantine(ctx, store.Quarantined{EventID: fmt.Sprintf("e%d", i), Cursor: int64(i + 1), DisputeID: "d",
			Class: "limit", Reason: "index row size exceeds"})
		require.NoError(t, err)
	}
	var got []*intakesvcv1.QuarantinedEvent
	tok := ""
	for {
		resp, err := a.client.ListQuarantinedEvents(ctx, &intakesvcv1.ListQuarantinedEventsRequest{PageSize: 2, PageToken: tok})
		require.NoError(t, err)
		got = append(got, resp.GetEvents()...)
		if tok = resp.GetNextPageToken(); tok == "" {
			break
		}
	}
	require.Len(t, got, 3)
	require.Equal(t, "e2", got[0].GetEventId())
	require.Equal(t, "limit", got[0].GetClass())
	require.EqualValues(t, 3, got[0].GetCursor())
	require.EqualValues(t, 1, got[0].GetSeenCount())
	require.NotNil(t, got[0].GetFirstSeenAt())
	_, err := a.client.ListQuarantinedEvents(ctx, &intakesvcv1.ListQuarantinedEventsRequest{PageToken: "garbage!"})
	require.Equal(t, codes.InvalidArgument, status.Code(err))
}

package intake_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/metrics"
	"github.com/serbero/serbero/services/intakesvc/internal/outbox"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// streamer is a relaygw that streams a fixed list of signed dispute
// events (whatever they hold: the real relaygw bounds what it stores, so
// only a stand-in can deliver an event Postgres refuses), with cursors 1..n.
type streamer struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer
	mu     sync.Mutex
	events []*relaygwv1.DisputeEvent
	opened chan *relaygwv1.StreamDisputeEventsRequest
}

func (s *streamer) StreamDisputeEvents(req *relaygwv1.StreamDisputeEventsRequest, stream relaygwv1.RelayGatewayService_StreamDisputeEventsServer) error {
	select {
	case s.opened <- req:
	default:
	}
	s.mu.Lock()
	evs := append([]*relaygwv1.DisputeEvent(nil), s.events...)
	s.mu.Unlock()
	for _, ev := range evs {
		if ev.GetCursor() <= req.GetAfterCursor() {
			continue
		}
		if err := stream.Send(&relaygwv1.StreamDisputeEventsResponse{Event: ev}); err != nil {
			return err
		}
	}
	<-stream.Context().Done()
	return nil
}

// startStreamer serves events signed by mostro as relaygw would stream them.
func startStreamer(t *testing.T, mostro keys.Keys, evs ...nostr.Event) (relaygwv1.RelayGatewayServiceClient, *streamer) {
	t.Helper()
	s := &streamer{opened: make(chan *relaygwv1.StreamDisputeEventsRequest, 16)}
	for i, ev := range evs {
		require.NoError(t, mostro.Sign(&ev))
		pe := &relaygwv1.DisputeEvent{Cursor: int64(i + 1), EventId: ev.ID, Pubkey: ev.PubKey, Kind: int32(ev.Kind),
			Sig: ev.Sig, CreatedAt: timestamppb.New(ev.CreatedAt.Time()), Content: ev.Content}
		for _, tg := range ev.Tags {
			pe.Tags = append(pe.Tags, &relaygwv1.Tag{Values: tg})
		}
		s.events = append(s.events, pe)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer()
	relaygwv1.RegisterRelayGatewayServiceServer(gs, s)
	go func() { _ = gs.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() {
		conn.Close()
		gs.Stop()
	})
	return relaygwv1.NewRelayGatewayServiceClient(conn), s
}

// incompressible is n random hex characters (Postgres compresses a
// repetitive key enough to index it).
func incompressible(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func dispute(d, status string, at nostr.Timestamp) nostr.Event {
	return nostr.Event{Kind: 38386, CreatedAt: at, Tags: nostr.Tags{{"d", d}, {"s", status}, {"initiator", "buyer"}}}
}

// runIntake runs an intake on st until the returned stop is called.
func runIntake(t *testing.T, st *store.Store, rg relaygwv1.RelayGatewayServiceClient, mostroPK string, m *metrics.Metrics) (*logtest.Buffer, func()) {
	t.Helper()
	log, logs := logtest.New()
	out := outbox.New(outbox.Config{}, outbox.Deps{Store: st, Relaygw: rg, Metrics: m, Logger: log})
	in := intake.New(intake.Config{MostroPubkey: mostroPK}, intake.Deps{Store: st, Relaygw: rg, Metrics: m, Outbox: out, Logger: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.Run(ctx)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			t.Logf("logs:\n%s", logs.String())
		}
	})
	return logs, stop
}

func waitCursor(t *testing.T, st *store.Store, want int64) {
	t.Helper()
	require.Eventually(t, func() bool {
		c, err := st.Cursor(context.Background())
		return err == nil && c >= want
	}, 15*time.Second, 10*time.Millisecond, "the intake cursor never reached %d", want)
}

// An event Postgres refuses whatever the retry (a d tag too large to
// index, a NUL byte) is quarantined with its reason, counted, and passed:
// the events after it are applied and the cursor moves on. A restart
// resumes after it; a replay of the stream meets it again and bumps its
// row instead of getting stuck.
func TestPoisonEventsAreQuarantinedAndPassed(t *testing.T) {
	t.Parallel()
	s, db := setup(t)
	mostro := keys.Generate()
	now := nostr.Now()
	huge := incompressible(6000)
	rg, str := startStreamer(t, mostro,
		dispute("d-before", "initiated", now),
		dispute(huge, "initiated", now),
		dispute("nul\x00id", "initiated", now),
		dispute("d-after", "initiated", now))
	m := metrics.New(prometheus.NewRegistry())
	logs, stop := runIntake(t, s, rg, mostro.PublicKey(), m)
	req := <-str.opened
	require.Zero(t, req.GetAfterCursor(), "a first start asks from 0")
	require.Equal(t, intake.Consumer, req.GetConsumer(), "named, so relaygw's retention keeps what intake has not passed")
	waitCursor(t, s, 4)

	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM disputes WHERE dispute_id IN ('d-before', 'd-after')`))
	list, _, err := s.ListQuarantine(context.Background(), 10, nil)
	require.NoError(t, err)
	require.Len(t, list, 2)
	byCursor := map[int64]store.Quarantined{}
	for _, q := range list {
		byCursor[q.Cursor] = q
	}
	require.Equal(t, intake.ClassLimit, byCursor[2].Class)
	require.Equal(t, str.events[1].GetEventId(), byCursor[2].EventID)
	require.Contains(t, byCursor[2].Reason, "54000", "the SQLSTATE of an index row too large")
	require.Len(t, []rune(byCursor[2].DisputeID), 256, "the d tag is kept cut")
	require.Equal(t, intake.ClassData, byCursor[3].Class)
	require.Equal(t, "nulid", byCursor[3].DisputeID, "NUL dropped: the row itself must be storable")
	require.Equal(t, 1.0, testutil.ToFloat64(m.Quarantined.WithLabelValues(intake.ClassLimit)))
	require.Equal(t, 1.0, testutil.ToFloat64(m.Quarantined.WithLabelValues(intake.ClassData)))
	require.Len(t, logs.Find("dispute event quarantined: it can never be applied; intake moves on"), 2)
	require.Zero(t, testutil.ToFloat64(m.PersistenceFailures), "never retried as transient")
	stop()

	// A restart resumes after the poison.
	_, stop2 := runIntake(t, s, rg, mostro.PublicKey(), metrics.New(nil))
	require.EqualValues(t, 4, (<-str.opened).GetAfterCursor(), "the restart resumes after the poison")
	stop2()
	// A replay from the beginning meets the poison again: bumped, passed.
	_, err = db.Pool.Exec(context.Background(), `UPDATE intake_cursor SET cursor = 0`)
	require.NoError(t, err)
	_, stop3 := runIntake(t, s, rg, mostro.PublicKey(), metrics.New(nil))
	require.Eventually(t, func() bool {
		return count(t, db.Pool, `SELECT count(*) FROM intake_quarantine WHERE seen_count = 2`) == 2
	}, 15*time.Second, 10*time.Millisecond)
	waitCursor(t, s, 4)
	stop3()
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM intake_quarantine`))
	require.Equal(t, 2, count(t, db.Pool, `SELECT count(*) FROM disputes`))
}

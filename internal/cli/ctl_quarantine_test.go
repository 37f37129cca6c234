package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/timestamppb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcserver"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/intakesvc"
)

// eventStream is a relaygw that streams a fixed list of signed dispute
// events (relaygw itself refuses to store the poison below, so only a
// stand-in can deliver it).
type eventStream struct {
	relaygwv1.UnimplementedRelayGatewayServiceServer
	events []*relaygwv1.DisputeEvent
}

func (s *eventStream) StreamDisputeEvents(req *relaygwv1.StreamDisputeEventsRequest, stream relaygwv1.RelayGatewayService_StreamDisputeEventsServer) error {
	for _, ev := range s.events {
		if ev.GetCursor() > req.GetAfterCursor() {
			if err := stream.Send(&relaygwv1.StreamDisputeEventsResponse{Event: ev}); err != nil {
				return err
			}
		}
	}
	<-stream.Context().Done()
	return nil
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return lis
}

// runIntakesvc serves intakesvc on addr until the returned stop.
func runIntakesvc(t *testing.T, db *pgdbtest.DB, rg relaygwv1.RelayGatewayServiceClient, mostroPK string, lis net.Listener) func() {
	t.Helper()
	log, _ := logtest.New()
	cfg := intakesvc.DefaultConfig()
	cfg.MostroPubkey = mostroPK
	svc, err := intakesvc.New(intakesvc.Deps{Config: cfg, Logger: log, Pool: db.Pool, Relaygw: rg})
	require.NoError(t, err)
	srv, err := grpcserver.New(grpcserver.Options{Logger: log, Grace: time.Second, AuthToken: "ctl-token"})
	require.NoError(t, err)
	svc.Register(srv.GRPC())
	srv.Start(lis)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = svc.Run(ctx)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		srv.EndStreams()
		cancel()
		<-done
		srv.Stop()
	}
	t.Cleanup(stop)
	return stop
}

func runCtl(t *testing.T, addr string, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := func(k string) string {
		if k == "SERBERO_AUTH_TOKEN" {
			return "ctl-token"
		}
		return ""
	}
	err := Run(context.Background(), append([]string{"ctl", "--addr", addr}, args...), IO{Getenv: getenv, Stdout: &out, Stderr: &errOut}, "test")
	require.NoError(t, err, errOut.String())
	return out.String()
}

// The restart-after-poison scenario as an operator sees it: `serbero ctl
// disputes quarantine` lists the event intake set aside, the dispute after
// it is recorded, and a restart neither gets stuck nor meets it again.
func TestCtlListsQuarantinedEventsAcrossARestart(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	mostro := keys.Generate()
	b := make([]byte, 3000)
	_, _ = rand.Read(b)
	var stream eventStream
	for i, d := range []string{hex.EncodeToString(b), "d-after-poison"} {
		ev := nostr.Event{Kind: 38386, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"d", d}, {"s", "initiated"}, {"initiator", "buyer"}}}
		require.NoError(t, mostro.Sign(&ev))
		pe := &relaygwv1.DisputeEvent{Cursor: int64(i + 1), EventId: ev.ID, Pubkey: ev.PubKey, Kind: 38386, Sig: ev.Sig,
			CreatedAt: timestamppb.New(ev.CreatedAt.Time())}
		for _, tg := range ev.Tags {
			pe.Tags = append(pe.Tags, &relaygwv1.Tag{Values: tg})
		}
		stream.events = append(stream.events, pe)
	}
	rgLis := listen(t)
	gs := grpc.NewServer()
	relaygwv1.RegisterRelayGatewayServiceServer(gs, &stream)
	go func() { _ = gs.Serve(rgLis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(rgLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	rg := relaygwv1.NewRelayGatewayServiceClient(conn)

	lis := listen(t)
	addr := lis.Addr().String()
	stop := runIntakesvc(t, db, rg, mostro.PublicKey(), lis)
	require.Eventually(t, func() bool {
		return strings.Contains(runCtl(t, addr, "disputes", "list"), "d-after-poison")
	}, 15*time.Second, 20*time.Millisecond, "intake continued past the poison")
	out := runCtl(t, addr, "disputes", "quarantine")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Regexp(t, `^EVENT\s+CURSOR\s+DISPUTE\s+CLASS\s+SEEN`, lines[0])
	fields := strings.Fields(lines[1])
	require.Equal(t, stream.events[0].GetEventId(), fields[0])
	require.Equal(t, "1", fields[1], "its cursor")
	require.Equal(t, "limit", fields[3])
	require.Equal(t, "1", fields[4], "seen once")
	require.Contains(t, lines[1], "index row size")
	require.Regexp(t, `"class":\s+"limit"`, runCtl(t, addr, "--json", "disputes", "quarantine"))
	stop()

	// A restart on the same database resumes after both events.
	lis2 := listen(t)
	addr2 := lis2.Addr().String()
	runIntakesvc(t, db, rg, mostro.PublicKey(), lis2)
	require.Eventually(t, func() bool {
		var cursor int64
		return db.Pool.QueryRow(context.Background(), `SELECT cursor FROM intake_cursor`).Scan(&cursor) == nil && cursor == 2
	}, 15*time.Second, 20*time.Millisecond)
	out = runCtl(t, addr2, "disputes", "quarantine")
	lines = strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 2, out)
	require.Equal(t, "1", strings.Fields(lines[1])[4], "not met again after the restart")
}

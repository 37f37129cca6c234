package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/grpcclient"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The newcomer's path: init-config, serve --dev (an embedded relay, no
// [[relays]]), publish a dispute as the dev Mostro, see relaygw stream it,
// send a DM to the dev solver and read it with read-dms.
func TestDevtoolAgainstServeDev(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "dev-config.toml")
	run := func(ctx context.Context, env map[string]string, args ...string) (string, string, error) {
		var out, errOut syncBuffer
		err := Run(ctx, args, IO{Getenv: func(k string) string { return env[k] }, Stdout: &out, Stderr: &errOut}, "test")
		return out.String(), errOut.String(), err
	}
	_, _, err := run(context.Background(), nil, "devtool", "init-config", "--out", cfgPath)
	require.NoError(t, err)

	relayAddr, grpcAddr := freePort(t), freePort(t)
	relayURL := "ws://" + relayAddr
	env := map[string]string{
		"SERBERO_DATABASE_URL":             db.URL,
		"SERBERO_AUTH_TOKEN":               "devtoken",
		"SERBERO_RELAYGW_DEV_RELAY_LISTEN": relayAddr,
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var logs syncBuffer
	go func() {
		served <- Run(ctx, []string{"serve", "--target=relaygw", "--dev", "--config", cfgPath, "--grpc-listen", grpcAddr, "--metrics-listen", "off"},
			IO{Getenv: func(k string) string { return env[k] }, Stdout: &logs, Stderr: &logs}, "test")
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			require.NoError(t, err, logs.String())
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
	})

	conn, err := grpcclient.Dial(grpcAddr, grpcclient.Options{Token: "devtoken"})
	require.NoError(t, err)
	defer conn.Close()
	client := relaygwv1.NewRelayGatewayServiceClient(conn)
	// Wait until relaygw is subscribed on its embedded relay.
	require.Eventually(t, func() bool {
		st, err := client.GetRelayStatus(ctx, &relaygwv1.GetRelayStatusRequest{})
		return err == nil && len(st.GetRelays()) == 1 && st.GetRelays()[0].GetConnected() && st.GetRelays()[0].GetUrl() == relayURL
	}, 20*time.Second, 50*time.Millisecond, logs.String())

	stream, err := client.StreamDisputeEvents(ctx, &relaygwv1.StreamDisputeEventsRequest{})
	require.NoError(t, err)
	mostroKey := filepath.Join(dir, "dev-mostro.key")
	_, _, err = run(ctx, nil, "devtool", "publish-info", "--relay", relayURL, "--mostro-key", mostroKey)
	require.NoError(t, err)
	out, _, err := run(ctx, nil, "devtool", "publish-dispute", "--relay", relayURL, "--mostro-key", mostroKey)
	require.NoError(t, err)
	m := regexp.MustCompile(`published dispute (\S+) \(status initiated\) as event ([0-9a-f]{64})`).FindStringSubmatch(out)
	require.NotNil(t, m, out)
	got, err := stream.Recv()
	require.NoError(t, err)
	require.Equal(t, m[2], got.GetEvent().GetEventId())
	require.Equal(t, []string{"d", m[1]}, got.GetEvent().GetTags()[0].GetValues())

	// The dev solver's key is in dev-solver.key; its pubkey is in the config.
	cfg, err := os.ReadFile(cfgPath)
	require.NoError(t, err)
	solverPK := regexp.MustCompile(`\[\[solvers\]\][^\[]*pubkey = "([0-9a-f]{64})"`).FindStringSubmatch(string(cfg))
	require.NotNil(t, solverPK)
	_, err = client.SendDirectMessage(ctx, &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solverPK[1], Body: "hello dev solver", IdempotencyKey: "dev"})
	require.NoError(t, err)
	out, _, err = run(ctx, nil, "devtool", "read-dms", "--relay", relayURL, "--solver-key", filepath.Join(dir, "dev-solver.key"))
	require.NoError(t, err)
	require.Contains(t, out, "hello dev solver")
	require.True(t, strings.HasPrefix(out, "--- "), out)

	// The relay is an ordinary Nostr relay for any client.
	c, err := relayconn.Dial(ctx, relayURL, relayconn.Options{})
	require.NoError(t, err)
	defer c.Close()
	evs, err := c.Query(ctx, nostr.Filters{{Kinds: []int{38386}, Tags: nostr.TagMap{"d": {m[1]}}}})
	require.NoError(t, err)
	require.Len(t, evs, 1)
}

func TestDevtoolUsage(t *testing.T) {
	t.Parallel()
	var out, errOut bytes.Buffer
	err := Run(context.Background(), []string{"devtool", "nope"}, IO{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut}, "test")
	require.Error(t, err)
	require.Equal(t, 2, ExitCode(err))
	require.Contains(t, errOut.String(), "publish-dispute")
	err = Run(context.Background(), []string{"devtool", "read-dms", "--solver-key", filepath.Join(t.TempDir(), "missing.key")}, IO{Getenv: func(string) string { return "" }, Stdout: &out, Stderr: &errOut}, "test")
	require.ErrorContains(t, err, "run make dev once")
}

package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/service"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

// The first start with [relaygw].dispute_backfill_seconds, from the
// configuration file through relaygw and intakesvc in one process: the
// relays' history inside the window is recorded, only the dispute still
// initiated is notified (the taken and the resolved ones silently), and
// history older than the window is not read at all.
func TestFirstStartWithABackfillWindowNotifiesOnlyStillInitiatedDisputes(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	r := relay.Start(t)
	mostro, serbero := keys.Generate(), keys.Generate()
	now := nostr.Now()
	revision := func(d, status string, at nostr.Timestamp) nostr.Event {
		ev := nostr.Event{Kind: 38386, CreatedAt: at, Tags: nostr.Tags{{"d", d}, {"s", status}, {"initiator", "buyer"},
			{"y", "mostro", "Test node"}, {"z", "dispute"}}}
		require.NoError(t, mostro.Sign(&ev))
		r.Inject(ev)
		return ev
	}
	open := revision("d-open", "initiated", now-1800)
	revision("d-taken", "in-progress", now-1700)
	revision("d-done", "settled", now-1600)
	revision("d-too-old", "initiated", now-3*3600)
	solvers := []*fakesolver.Solver{fakesolver.Start(t, r.URL()), fakesolver.Start(t, r.URL())}

	p := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(p, []byte(fmt.Sprintf(`
[serbero]
private_key = %q
[mostro]
pubkey = %q
[[relays]]
url = %q
[[solvers]]
pubkey = %q
[[solvers]]
pubkey = %q
permission = "write"
[relaygw]
dispute_backfill_seconds = 3600
[database]
url = %q
[server]
auth_token = "t0ken"
grpc_listen = "127.0.0.1:0"
metrics_listen = ""
drain_seconds = 0
shutdown_grace_seconds = 2
`, serbero.RevealSecretHex(), mostro.PublicKey(), r.URL(), solvers[0].Pubkey(), solvers[1].Pubkey(), db.URL)), 0o600))
	loaded, err := config.Load(config.LoadOptions{Path: p, Target: config.TargetAll, Getenv: func(string) string { return "" }})
	require.NoError(t, err)
	builders := defaultBuilders()
	for _, idleOne := range []config.Target{config.TargetAuthsvc, config.TargetMediationsvc, config.TargetEscalationsvc} {
		builders[idleOne] = func(*env) (service.Service, error) { return idle(), nil }
	}
	logs := &logtest.Buffer{}
	proc, err := Complete(t.Context(), Options{Loaded: loaded, Stderr: logs, Target: config.TargetAll, builders: builders})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(30 * time.Second):
			t.Error("no clean stop")
		}
		if t.Failed() {
			t.Logf("logs:\n%s", logs)
		}
	})

	state := func(d string) string {
		var s string
		if db.Pool.QueryRow(context.Background(), `SELECT lifecycle_state FROM disputes WHERE dispute_id = $1`, d).Scan(&s) != nil {
			return ""
		}
		return s
	}
	want := "New Mostro dispute requires attention.\ndispute_id: d-open\ninitiator: buyer\nevent_timestamp: " +
		strconv.FormatInt(int64(open.CreatedAt), 10) + "\nstatus: initiated"
	for _, s := range solvers {
		require.Equal(t, want, s.WaitFor(1, 30*time.Second)[0].Body)
	}
	require.Eventually(t, func() bool {
		return state("d-open") == "notified" && state("d-taken") == "taken" && state("d-done") == "resolved"
	}, 30*time.Second, 20*time.Millisecond)
	for _, s := range solvers {
		s.AssertNoMore(500 * time.Millisecond)
	}
	require.Empty(t, state("d-too-old"), "older than the window: never read")
	var jobs int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM intake_notification_jobs WHERE dispute_id <> 'd-open'`).Scan(&jobs))
	require.Zero(t, jobs, "no DM queued for the taken or the resolved dispute")
	require.Len(t, logs.Find("first start with a backfill window: recording the disputes relaygw backfills; only those still initiated are notified"), 1)
	started := logs.Find("intake started")
	require.Len(t, started, 1)
	require.Equal(t, "first", started[0].Str("start"))
}

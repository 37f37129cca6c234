package main_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/schema"
)

// binary is the serbero command under test, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "serbero-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "serbero")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		panic("build serbero: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().String()
}

func writeConfig(t *testing.T, dbURL, grpcAddr string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	content := fmt.Sprintf(`
[serbero]
private_key = "0000000000000000000000000000000000000000000000000000000000000001"
[mostro]
pubkey = "0202020202020202020202020202020202020202020202020202020202020202"
[database]
url = %q
[server]
grpc_listen = %q
metrics_listen = ""
log_format = "json"
drain_seconds = 1
shutdown_grace_seconds = 3
`, dbURL, grpcAddr)
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func command(ctx context.Context, args ...string) (*exec.Cmd, *bytes.Buffer) {
	cmd := exec.CommandContext(ctx, binary, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.Env = append(os.Environ(), "SERBERO_CONFIG=", "SERBERO_DATABASE_URL=", "SERBERO_PRIVATE_KEY=")
	return cmd, &out
}

func TestMigrateFromTwoProcessesAtOnce(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewEmptyDB(t)

	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() {
			cmd, out := command(t.Context(), "migrate", "up", "--database-url", db.URL)
			errs[i] = cmd.Run()
			outs[i] = out.String()
		})
	}
	wg.Wait()
	for i := range 2 {
		require.NoError(t, errs[i], outs[i])
	}
	applied := strings.Count(outs[0], "applied 0") + strings.Count(outs[1], "applied 0")
	require.Equal(t, migrationFiles(t), applied, "each migration applied once across both processes:\n%s\n%s", outs[0], outs[1])

	// A third run is a no-op, and status lists every migration as applied.
	cmd, out := command(t.Context(), "migrate", "up", "--database-url", db.URL)
	require.NoError(t, cmd.Run(), out.String())
	require.Contains(t, out.String(), "(0 applied now)")
	cmd, out = command(t.Context(), "migrate", "status", "--database-url", db.URL)
	require.NoError(t, cmd.Run(), out.String())
	require.Equal(t, migrationFiles(t), strings.Count(out.String(), " applied "), out.String())
}

func TestServeAllIsHealthyAndStopsOnSIGTERM(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	addr := freeAddr(t)
	cfg := writeConfig(t, db.URL, addr)

	cmd, out := command(context.Background(), "serve", "--target=all", "--config", cfg)
	cmd.Env = append(cmd.Env, "SERBERO_AUTH_TOKEN=ctl-token")
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	services := []string{
		"", "serbero.relaygw.v1.RelayGatewayService", "serbero.intakesvc.v1.IntakeService",
		"serbero.authsvc.v1.AuthService", "serbero.mediationsvc.v1.MediationService",
		"serbero.escalationsvc.v1.EscalationService",
	}
	for _, svc := range services {
		require.Eventually(t, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
			return err == nil && resp.GetStatus() == healthpb.HealthCheckResponse_SERVING
		}, 20*time.Second, 50*time.Millisecond, "service %q never SERVING; output:\n%s", svc, out)
	}

	// The operator CLI talks to the running services with the token.
	ctl := func(token string, args ...string) (string, error) {
		c, out := command(t.Context(), append([]string{"ctl", "--addr", addr}, args...)...)
		c.Env = append(c.Env, "SERBERO_AUTH_TOKEN="+token)
		err := c.Run()
		return out.String(), err
	}
	got, err := ctl("ctl-token", "disputes", "list")
	require.NoError(t, err, got)
	require.Contains(t, got, "DISPUTE")
	got, err = ctl("ctl-token", "handoffs", "list", "--status", "parked")
	require.NoError(t, err, got)
	require.Contains(t, got, "TRIGGER")
	got, err = ctl("ctl-token", "identity")
	require.NoError(t, err, got)
	require.Contains(t, got, "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "the pubkey of secret key 1")
	got, err = ctl("wrong-token", "disputes", "list")
	require.Error(t, err)
	require.Contains(t, got, "refused the service token")

	start := time.Now()
	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, "clean exit; output:\n%s", out)
	case <-time.After(15 * time.Second):
		t.Fatalf("serbero did not stop after SIGTERM; output:\n%s", out)
	}
	// drain (1 s) + grace (3 s) bound the stop.
	require.Less(t, time.Since(start), 4*time.Second+2*time.Second)
	require.Contains(t, out.String(), `"msg":"stopped cleanly"`)
}

func TestServeNotReadyUntilMigrated(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewEmptyDB(t)
	addr := freeAddr(t)
	cfg := writeConfig(t, db.URL, addr)

	cmd, out := command(context.Background(), "serve", "--target=intakesvc", "--config", cfg)
	cmd.Env = append(cmd.Env, "SERBERO_AUTH_TOKEN=t0ken", "SERBERO_RELAYGW_ADDR=127.0.0.1:1")
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })

	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	health := healthpb.NewHealthClient(conn)
	check := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			return -1
		}
		return resp.GetStatus()
	}
	require.Eventually(t, func() bool { return check("") == healthpb.HealthCheckResponse_SERVING }, 20*time.Second, 50*time.Millisecond, "liveness; output:\n%s", out)
	require.Equal(t, healthpb.HealthCheckResponse_NOT_SERVING, check("serbero.intakesvc.v1.IntakeService"), "not ready before migrate")

	mig, migOut := command(t.Context(), "migrate", "up", "--database-url", db.URL)
	require.NoError(t, mig.Run(), migOut.String())
	require.Eventually(t, func() bool {
		return check("serbero.intakesvc.v1.IntakeService") == healthpb.HealthCheckResponse_SERVING
	}, 20*time.Second, 50*time.Millisecond, "ready after migrate; output:\n%s", out)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		require.NoError(t, err, out.String())
	case <-time.After(15 * time.Second):
		t.Fatalf("no exit; output:\n%s", out)
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		args    []string
		env     []string
		config  string
		wantOut string
		code    int
	}{
		{name: "UnknownTarget", args: []string{"serve", "--target=nope"}, wantOut: `unknown target "nope"`, code: 2},
		{name: "UnknownCommand", args: []string{"frobnicate"}, wantOut: `unknown command "frobnicate"`, code: 2},
		{
			// The reference's exact line, alone on stderr.
			name:    "DispatchIntervalZero",
			config:  "[mostro]\npubkey = \"0202020202020202020202020202020202020202020202020202020202020202\"\n[escalation]\ndispatch_interval_seconds = 0\n",
			wantOut: "failed to load config from {path}: configuration error: [escalation].dispatch_interval_seconds must be a positive integer (got 0)\n",
			code:    1,
		},
		{
			name:    "MostroPubkeyNotAKey",
			config:  "[mostro]\npubkey = \"0303030303030303030303030303030303030303030303030303030303030303\"\n",
			wantOut: "invalid key: invalid mostro pubkey: invalid public key: not a point on secp256k1\n",
			code:    1,
		},
		{
			name:    "SingleTargetNeedsToken",
			config:  "[mostro]\npubkey = \"0202020202020202020202020202020202020202020202020202020202020202\"\n",
			args:    []string{"serve", "--target=escalationsvc"},
			wantOut: "[server].auth_token is required",
			code:    1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := tt.args
			want := tt.wantOut
			if tt.config != "" {
				p := filepath.Join(t.TempDir(), "c.toml")
				want = strings.ReplaceAll(want, "{path}", p)
				require.NoError(t, os.WriteFile(p, []byte(tt.config), 0o600))
				if args == nil {
					args = []string{"serve", "--target=intakesvc"}
				}
				args = append(args, "--config", p)
			}
			cmd, out := command(t.Context(), args...)
			cmd.Env = append(cmd.Env, tt.env...)
			err := cmd.Run()
			var exitErr *exec.ExitError
			require.ErrorAs(t, err, &exitErr, out.String())
			require.Equal(t, tt.code, exitErr.ExitCode(), out.String())
			if strings.HasSuffix(want, "\n") {
				require.Equal(t, want, out.String())
				return
			}
			require.Contains(t, out.String(), want)
		})
	}
}

// migrationFiles is how many migrations there are (numbers may have gaps,
// so it is not schema.Version()).
func migrationFiles(t testing.TB) int {
	t.Helper()
	entries, err := fs.ReadDir(schema.Migrations(), ".")
	require.NoError(t, err)
	return len(entries)
}

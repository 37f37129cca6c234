package cli

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthServer serves grpc.health.v1 on a random port: "" SERVING, "ready"
// SERVING, "down" NOT_SERVING.
func healthServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("ready", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus("down", healthpb.HealthCheckResponse_NOT_SERVING)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestHealthCommand(t *testing.T) {
	t.Parallel()
	addr := healthServer(t)
	closed := freePort(t) // nothing listens there
	for _, tc := range []struct {
		name    string
		args    []string
		wantOut []string
		wantErr string
	}{
		{name: "all serving", args: []string{addr, addr + "=ready"},
			wantOut: []string{addr + ` "": SERVING`, addr + " ready: SERVING"}},
		{name: "one not serving", args: []string{addr + "=ready", addr + "=down"},
			wantOut: []string{addr + " ready: SERVING", addr + " down: NOT_SERVING"}, wantErr: "not serving: " + addr + "=down"},
		{name: "unknown service", args: []string{addr + "=nope"}, wantOut: []string{"NotFound"}, wantErr: "not serving"},
		{name: "nothing listening", args: []string{"--timeout", "500ms", closed + "=ready"},
			wantOut: []string{"Unavailable"}, wantErr: "not serving"},
		{name: "no address", args: nil, wantErr: "no address given"},
		{name: "empty address", args: []string{"=ready"}, wantErr: "want HOST:PORT[=SERVICE]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out, errOut bytes.Buffer
			err := Run(context.Background(), append([]string{"health"}, tc.args...), IO{Stdout: &out, Stderr: &errOut, Getenv: func(string) string { return "" }}, "test")
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
			} else {
				require.NoError(t, err)
			}
			for _, w := range tc.wantOut {
				require.Contains(t, out.String(), w)
			}
		})
	}
}

package main_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/reasoningsim"
)

// Phase 3's reasoning bring-up at the serve level: a provider that cannot
// work leaves the process serving phases 1, 2 and 4, logs the exact
// error, and reports serbero.mediationsvc.reasoning NOT_SERVING; a working
// one reports it SERVING.
func TestServeReasoningHealth(t *testing.T) {
	t.Parallel()
	sim := reasoningsim.New(reasoningsim.Script{})
	sim.RequireKey("sk-serve-test")
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	prompts, err := filepath.Abs(filepath.Join("..", "..", "prompts"))
	require.NoError(t, err)

	tests := []struct {
		name, provider, apiBase string
		want                    healthpb.HealthCheckResponse_ServingStatus
		logged                  string
	}{
		{"NotYetImplemented", "ppqai", "https://api.ppq.ai", healthpb.HealthCheckResponse_NOT_SERVING,
			`reasoning provider 'ppqai' is declared at the Phase 3 boundary but not yet implemented; currently shipped providers: openai, openai-compatible, anthropic. Landing ppqai adapter support is tracked as future work beyond Phase 3.`},
		{"Unknown", "totally_made_up", "https://x.invalid", healthpb.HealthCheckResponse_NOT_SERVING,
			`unknown reasoning provider 'totally_made_up'; supported: openai, openai-compatible, anthropic (ppqai, openclaw are declared but not yet implemented)`},
		{"Simulator", "openai-compatible", srv.URL, healthpb.HealthCheckResponse_SERVING,
			`"msg":"Phase 3 mediation is fully configured; engine task will be spawned"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := pgdbtest.NewDB(t)
			addr := freeAddr(t)
			cfg := writeConfig(t, db.URL, addr)
			f, err := os.OpenFile(cfg, os.O_APPEND|os.O_WRONLY, 0)
			require.NoError(t, err)
			_, err = fmt.Fprintf(f, `
[mediation]
enabled = true
[reasoning]
enabled = true
provider = %q
api_base = %q
model = "sim-model"
request_timeout_seconds = 5
[prompts]
system_instructions_path = %q
classification_policy_path = %q
escalation_policy_path = %q
mediation_style_path = %q
message_templates_path = %q
`, tt.provider, tt.apiBase, filepath.Join(prompts, "phase3-system.md"), filepath.Join(prompts, "phase3-classification.md"),
				filepath.Join(prompts, "phase3-escalation-policy.md"), filepath.Join(prompts, "phase3-mediation-style.md"),
				filepath.Join(prompts, "phase3-message-templates.md"))
			require.NoError(t, err)
			require.NoError(t, f.Close())

			cmd, _ := command(context.Background(), "serve", "--target=all", "--config", cfg)
			out := &lockedBuffer{}
			cmd.Stdout, cmd.Stderr = out, out
			cmd.Env = append(cmd.Env, "SERBERO_AUTH_TOKEN=t", "SERBERO_REASONING_API_KEY=sk-serve-test")
			require.NoError(t, cmd.Start())
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			t.Cleanup(func() { _ = cmd.Process.Kill() })

			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			require.NoError(t, err)
			defer conn.Close()
			health := healthpb.NewHealthClient(conn)
			status := func(svc string) healthpb.HealthCheckResponse_ServingStatus {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if err != nil {
					return healthpb.HealthCheckResponse_UNKNOWN
				}
				return resp.GetStatus()
			}
			for _, svc := range []string{"serbero.intakesvc.v1.IntakeService", "serbero.mediationsvc.v1.MediationService", "serbero.escalationsvc.v1.EscalationService"} {
				require.Eventually(t, func() bool { return status(svc) == healthpb.HealthCheckResponse_SERVING }, 30*time.Second, 50*time.Millisecond,
					"%s never SERVING; output:\n%s", svc, out)
			}
			require.Eventually(t, func() bool { return strings.Contains(out.String(), tt.logged) }, 30*time.Second, 50*time.Millisecond, "output:\n%s", out)
			require.Equal(t, tt.want, status("serbero.mediationsvc.reasoning"), "output:\n%s", out)
			require.Equal(t, healthpb.HealthCheckResponse_SERVING, status(""), "the process keeps serving")
			require.NotContains(t, out.String(), "sk-serve-test", "the key is never logged")
			select {
			case err := <-exited:
				t.Fatalf("serbero exited: %v\n%s", err, out)
			default:
			}
		})
	}
}

// lockedBuffer collects a child's output while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

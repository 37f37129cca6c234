package mediationsvc_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/reasoningsim"
	"github.com/serbero/serbero/services/mediationsvc"
)

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type healthLog struct {
	mu  sync.Mutex
	got []string
}

func (h *healthLog) set(name string, serving bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, name+"="+map[bool]string{true: "SERVING", false: "NOT_SERVING"}[serving])
}

func (h *healthLog) all() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.got...)
}

func promptPaths(t *testing.T) mediationsvc.PromptPaths {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", "prompts"))
	require.NoError(t, err)
	return mediationsvc.PromptPaths{
		System:           filepath.Join(root, "phase3-system.md"),
		Classification:   filepath.Join(root, "phase3-classification.md"),
		EscalationPolicy: filepath.Join(root, "phase3-escalation-policy.md"),
		MediationStyle:   filepath.Join(root, "phase3-mediation-style.md"),
		MessageTemplates: filepath.Join(root, "phase3-message-templates.md"),
	}
}

func phase3Config(t *testing.T, provider, apiBase string) mediationsvc.Config {
	return mediationsvc.Config{
		MediationEnabled: true,
		Reasoning: mediationsvc.ReasoningConfig{
			Enabled: true, Provider: provider, Model: "sim-model", APIBase: apiBase,
			APIKeyEnv: "SERBERO_REASONING_API_KEY", APIKey: config.NewSecret("sk-dummy"), RequestTimeoutSeconds: 5,
		},
		Prompts: promptPaths(t),
	}
}

// start runs the service until the test ends and returns its reasoning
// core's presence once bring-up is over.
func start(t *testing.T, cfg mediationsvc.Config) (up bool, logs string, health []string, db *pgdbtest.DB) {
	t.Helper()
	db = pgdbtest.NewDB(t)
	buf := &syncBuffer{}
	h := &healthLog{}
	svc, err := mediationsvc.New(mediationsvc.Deps{
		Config: cfg, Logger: logging.New(buf, "json", slog.LevelDebug), Pool: db.Pool, SetHealth: h.set,
	})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	core, err := svc.Reasoner(wctx)
	require.NoError(t, err)
	return core != nil, buf.String(), h.all(), db
}

func TestPhase3BringUp(t *testing.T) {
	t.Parallel()
	sim := reasoningsim.New(reasoningsim.Script{})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	up, logs, health, db := start(t, phase3Config(t, "openai-compatible", srv.URL))
	require.True(t, up, logs)
	require.Contains(t, logs, `"msg":"Phase 3 prompt bundle loaded"`)
	require.Contains(t, logs, `"msg":"reasoning provider health check ok"`)
	require.Contains(t, logs, `"msg":"Phase 3 mediation is fully configured; engine task will be spawned"`)
	require.NotContains(t, logs, "sk-dummy")
	require.Equal(t, []string{"serbero.mediationsvc.reasoning=NOT_SERVING", "serbero.mediationsvc.reasoning=SERVING"}, health)
	var n int
	require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT count(*) FROM reasoning_prompt_bundles`).Scan(&n))
	require.Equal(t, 1, n, "the loaded bundle is stored by hash")
}

func TestPhase3StaysOff(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(nil)
	downURL := down.URL
	down.Close()
	tests := []struct {
		name   string
		cfg    func(t *testing.T) mediationsvc.Config
		logged []string
	}{
		{
			name: "NotYetImplemented",
			cfg:  func(t *testing.T) mediationsvc.Config { return phase3Config(t, "ppqai", "https://api.ppq.ai") },
			logged: []string{
				`"msg":"Phase 3 reasoning health check failed; mediation disabled for this run (Phase 1/2 detection and notification continue unaffected)"`,
				"reasoning provider 'ppqai' is declared at the Phase 3 boundary but not yet implemented; currently shipped providers: openai, openai-compatible, anthropic. Landing ppqai adapter support is tracked as future work beyond Phase 3.",
			},
		},
		{
			name: "UnknownProvider",
			cfg:  func(t *testing.T) mediationsvc.Config { return phase3Config(t, "totally_made_up", "https://x.invalid") },
			logged: []string{
				`"msg":"Phase 3 reasoning provider could not be built; mediation will stay disabled this run"`,
				"unknown reasoning provider 'totally_made_up'; supported: openai, openai-compatible, anthropic (ppqai, openclaw are declared but not yet implemented)",
			},
		},
		{
			name: "MissingPromptFile",
			cfg: func(t *testing.T) mediationsvc.Config {
				c := phase3Config(t, "openai", "https://x.invalid")
				c.Prompts.MediationStyle = filepath.Join(t.TempDir(), "missing.md")
				return c
			},
			logged: []string{
				`"msg":"Phase 3 prompt bundle failed to load; mediation will stay disabled this run"`,
				"failed to read prompt bundle file for `mediation_style_path` at ",
			},
		},
		{
			name:   "Unreachable",
			cfg:    func(t *testing.T) mediationsvc.Config { return phase3Config(t, "openai", downURL) },
			logged: []string{`"msg":"Phase 3 reasoning health check failed; mediation disabled for this run (Phase 1/2 detection and notification continue unaffected)"`},
		},
		{
			name: "ReasoningDisabled",
			cfg: func(t *testing.T) mediationsvc.Config {
				c := phase3Config(t, "openai", "https://x.invalid")
				c.Reasoning.Enabled = false
				return c
			},
			logged: []string{`"msg":"Phase 3 mediation enabled but [reasoning].enabled = false; skipping bring-up`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up, logs, health, db := start(t, tt.cfg(t))
			require.False(t, up)
			var sessions, bundles int
			require.NoError(t, db.Pool.QueryRow(t.Context(), `SELECT (SELECT count(*) FROM mediation_sessions), (SELECT count(*) FROM reasoning_prompt_bundles)`).Scan(&sessions, &bundles))
			require.Zero(t, sessions)
			require.Zero(t, bundles, "nothing stored when phase 3 stays off")
			_, err := db.Pool.Exec(t.Context(), `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at) VALUES ('d', 'e', 'm', 'buyer', 1, 1)`)
			require.NoError(t, err, "the disputes table is usable")
			for _, l := range tt.logged {
				require.Contains(t, logs, l)
			}
			require.NotEmpty(t, health)
			for _, h := range health {
				require.Equal(t, "serbero.mediationsvc.reasoning=NOT_SERVING", h)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cfg := phase3Config(t, "openai", "https://api.openai.com/v1")
	require.NoError(t, cfg.Validate())
	cfg.Reasoning.APIKey = config.Secret{}
	require.EqualError(t, cfg.Validate(), "configuration error: reasoning provider enabled but credential env var `SERBERO_REASONING_API_KEY` is unset or empty")
	cfg.Reasoning.APIKeyEnv = " "
	require.EqualError(t, cfg.Validate(), "configuration error: [reasoning].api_key_env is empty but [reasoning].enabled = true")
	cfg.Reasoning.Enabled = false
	require.NoError(t, cfg.Validate(), "no key needed with reasoning off")
	cfg.MaxRounds, cfg.Reasoning.FollowupRetryCount = -1, -1
	require.ErrorContains(t, cfg.Validate(), "[mediation].max_rounds")
	require.ErrorContains(t, cfg.Validate(), "[reasoning].followup_retry_count")
	_, err := mediationsvc.New(mediationsvc.Deps{Config: cfg, Logger: logging.Discard(), Pool: pgdbtest.NewDB(t).Pool})
	require.Error(t, err, "New validates")
}

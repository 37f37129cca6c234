package providers_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/providers"
)

// recorder answers every request like both APIs at once and records the
// paths it was asked for.
type recorder struct {
	mu    sync.Mutex
	paths []string
}

func (r *recorder) server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.paths = append(r.paths, req.Method+" "+req.URL.Path)
		r.mu.Unlock()
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"pong"}}],"content":[{"type":"text","text":"pong"}]}`))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.paths...)
}

func settings(name, base string) providers.Settings {
	return providers.Settings{Name: name, Model: "m", APIBase: base, APIKey: config.NewSecret("k"), RequestTimeoutSeconds: 5}
}

// The provider is chosen by configuration alone: the same call site
// reaches a different wire format.
func TestBuildRoutesByName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, base, want string
	}{
		{providers.OpenAI, "/v1", "POST /v1/chat/completions"},
		{providers.OpenAICompatible, "", "POST /chat/completions"},
		{providers.Anthropic, "", "POST /v1/messages"},
		{providers.Anthropic, "/v1", "POST /v1/messages"},
	}
	for _, tt := range tests {
		t.Run(tt.name+tt.base, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			srv := rec.server(t)
			p, err := providers.Build(settings(tt.name, srv.URL+tt.base))
			require.NoError(t, err)
			require.NoError(t, p.HealthCheck(t.Context()))
			require.Equal(t, []string{tt.want}, rec.got())
		})
	}
}

// Two openai configurations differing only in api_base and key: each
// endpoint gets exactly its own health check.
func TestProviderSwap(t *testing.T) {
	t.Parallel()
	a, b := &recorder{}, &recorder{}
	sa, sb := a.server(t), b.server(t)
	pa, err := providers.Build(settings(providers.OpenAI, sa.URL+"/v1"))
	require.NoError(t, err)
	sB := settings(providers.OpenAI, sb.URL+"/v1")
	sB.APIKey = config.NewSecret("other")
	pb, err := providers.Build(sB)
	require.NoError(t, err)
	require.NoError(t, pa.HealthCheck(t.Context()))
	require.NoError(t, pb.HealthCheck(t.Context()))
	require.Equal(t, []string{"POST /v1/chat/completions"}, a.got())
	require.Equal(t, []string{"POST /v1/chat/completions"}, b.got())
}

func TestNotYetImplemented(t *testing.T) {
	t.Parallel()
	for _, name := range []string{providers.PPQAI, providers.OpenClaw} {
		p, err := providers.Build(settings(name, "https://example.invalid"))
		require.NoError(t, err, "declared providers build")
		for _, call := range []func() error{
			func() error { return p.HealthCheck(context.Background()) },
			func() error {
				_, err := p.Classify(context.Background(), reasoning.ClassificationRequest{})
				return err
			},
			func() error { _, err := p.Summarize(context.Background(), reasoning.SummaryRequest{}); return err },
		} {
			err := call()
			require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
			require.ErrorContains(t, err, "reasoning provider '"+name+"' is declared at the Phase 3 boundary but not yet implemented")
			require.ErrorContains(t, err, "openai")
			require.ErrorContains(t, err, "future work")
		}
	}
}

func TestUnknownProvider(t *testing.T) {
	t.Parallel()
	_, err := providers.Build(settings("totally_made_up", "https://example.invalid"))
	require.EqualError(t, err, "unknown reasoning provider 'totally_made_up'; supported: openai, openai-compatible, anthropic (ppqai, openclaw are declared but not yet implemented)")
	var ue *providers.UnknownError
	require.ErrorAs(t, err, &ue)
}

func TestBadSettings(t *testing.T) {
	t.Parallel()
	_, err := providers.Build(settings(providers.OpenAI, "api.openai.com/v1"))
	require.ErrorContains(t, err, "[reasoning].api_base")
	s := settings(providers.Anthropic, "https://api.anthropic.com")
	s.Model = " "
	_, err = providers.Build(s)
	require.ErrorContains(t, err, "[reasoning].model is empty")
}

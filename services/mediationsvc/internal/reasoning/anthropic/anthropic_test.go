package anthropic_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/adaptertest"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/anthropic"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/httppolicy"
)

func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

func message(blocks ...string) adaptertest.Response {
	body := `{"id":"msg_1","type":"message","role":"assistant","model":"claude","content":[`
	for i, b := range blocks {
		if i > 0 {
			body += ","
		}
		body += b
	}
	return adaptertest.Response{Body: body + `],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":5}}`}
}

func text(s string) string { return `{"type":"text","text":` + q(s) + `}` }

func adapter(base string, retries int64) *anthropic.Provider {
	p := httppolicy.New(5, retries)
	p.InitialBackoff, p.MaxBackoff = time.Millisecond, time.Millisecond
	return anthropic.New(anthropic.Options{APIBase: base, APIKey: config.NewSecret("ak-test"), Model: "claude-sonnet-4-5", Policy: p})
}

var testBundle = bundle.New("You are Serbero.", "CLS", "ESC", "STY", "TPL")

func classifyReq() reasoning.ClassificationRequest {
	return reasoning.ClassificationRequest{SessionID: "d-1", DisputeID: "d-1", InitiatorRole: "buyer", Bundle: testBundle}
}

func TestMessagesURL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://api.anthropic.com":       "https://api.anthropic.com/v1/messages",
		"https://api.anthropic.com/":      "https://api.anthropic.com/v1/messages",
		"https://api.anthropic.com/v1":    "https://api.anthropic.com/v1/messages",
		"https://api.anthropic.com/v1/":   "https://api.anthropic.com/v1/messages",
		"https://proxy.example/v1/v1":     "https://proxy.example/v1/v1/messages",
		"https://proxy.example/anthropic": "https://proxy.example/anthropic/v1/messages",
	} {
		require.Equal(t, want, anthropic.MessagesURL(in), in)
	}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	sumReq := reasoning.SummaryRequest{SessionID: "s-1", DisputeID: "d-1", Bundle: testBundle, Classification: reasoning.LabelCoordinationFailureResolvable, Confidence: 0.9}
	tests := []struct {
		name     string
		base     string
		answer   adaptertest.Response
		call     func(p *anthropic.Provider) error
		wantBody string
	}{
		{
			name: "Classify", base: "/v1",
			answer: message(text(`{"classification":"coordination_failure_resolvable","confidence":0.88,"suggested_action":"summarize","rationale":"parties aligned on timing","flags":[]}`)),
			call: func(p *anthropic.Provider) error {
				r, err := p.Classify(t.Context(), classifyReq())
				if err == nil {
					require.Equal(t, reasoning.LabelCoordinationFailureResolvable, r.Classification)
					require.InDelta(t, 0.88, r.Confidence, 1e-9)
					require.Equal(t, reasoning.ActionSummarize, r.Action.Kind)
					require.Equal(t, "parties aligned on timing", r.Rationale.Reveal())
				}
				return err
			},
			wantBody: `{"model":"claude-sonnet-4-5","max_tokens":2048,"system":` + q(testBundle.System) + `,"messages":[{"role":"user","content":` +
				q(reasoning.ClassificationPrompt(classifyReq())) + `}],"temperature":0.0}`,
		},
		{
			name: "Summarize", base: "",
			answer: message(text("Buyer confirmed the transfer.\nSUGGESTED_NEXT_STEP: Solver may close the dispute"), text(" after checking.\nRATIONALE: aligned")),
			call: func(p *anthropic.Provider) error {
				r, err := p.Summarize(t.Context(), sumReq)
				if err == nil {
					require.Equal(t, "Buyer confirmed the transfer.", r.SummaryText)
					require.Equal(t, "Solver may close the dispute after checking.", r.SuggestedNextStep)
					require.Equal(t, "aligned", r.Rationale.Reveal())
				}
				return err
			},
			wantBody: `{"model":"claude-sonnet-4-5","max_tokens":4096,"system":` + q(testBundle.System) + `,"messages":[{"role":"user","content":` +
				q(reasoning.SummaryPrompt(sumReq)) + `}],"temperature":0.2}`,
		},
		{
			name: "Health", base: "/v1/", answer: message(text("pong")),
			call:     func(p *anthropic.Provider) error { return p.HealthCheck(t.Context()) },
			wantBody: `{"model":"claude-sonnet-4-5","max_tokens":8,"messages":[{"role":"user","content":"ping"}],"temperature":0.0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := adaptertest.New(t, tt.answer)
			require.NoError(t, tt.call(adapter(srv.URL+tt.base, 0)))
			reqs := srv.Requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			require.Equal(t, "POST", r.Method)
			require.Equal(t, "/v1/messages", r.Path, "api_base %q normalised", tt.base)
			require.Equal(t, "ak-test", r.Header.Get("x-api-key"))
			require.Equal(t, "2023-06-01", r.Header.Get("anthropic-version"))
			require.Equal(t, "application/json", r.Header.Get("content-type"))
			require.Empty(t, r.Header.Get("Authorization"))
			require.Equal(t, tt.wantBody, string(r.Body))
		})
	}
}

func TestResponses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		resp     adaptertest.Response
		retries  int64
		wantCat  reasoning.Category
		wantErr  string
		wantHits int
	}{
		{"ConcatenatesAroundThinking", message(text(`{"classification":"coordination_failure_resolvable",`), `{"type":"thinking","thinking":"hmm"}`, text(`"confidence":0.73,"suggested_action":"summarize"}`)), 0, "", "", 1},
		{"ProseIsMalformed", message(text("I believe both parties agree.")), 2, reasoning.CategoryMalformedResponse, "not JSON", 1},
		{"NoTextBlock", message(`{"type":"tool_use","id":"x","name":"y","input":{}}`), 2, reasoning.CategoryMalformedResponse, "no text block in anthropic response", 1},
		{"TextBlockWithoutText", message(`{"type":"text"}`), 2, reasoning.CategoryMalformedResponse, "without text", 1},
		{"InvalidKey", adaptertest.Response{Status: 401, Body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`}, 3, reasoning.CategoryUnreachable, "anthropic http 401", 1},
		{"Overloaded", adaptertest.Response{Status: 529, Body: `{"type":"error","error":{"type":"overloaded_error"}}`, Header: map[string]string{"Retry-After": "0"}}, 1, reasoning.CategoryUnreachable, "anthropic http 529: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\"}} (retry-after: 0)", 2},
		{"RateLimited", adaptertest.Response{Status: 429, Body: `{}`}, 2, reasoning.CategoryUnreachable, "anthropic http 429", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := adaptertest.New(t, tt.resp)
			r, err := adapter(srv.URL, tt.retries).Classify(t.Context(), classifyReq())
			require.Len(t, srv.Requests(), tt.wantHits)
			if tt.wantCat == "" {
				require.NoError(t, err)
				require.InDelta(t, 0.73, r.Confidence, 1e-9)
				return
			}
			require.Equal(t, tt.wantCat, reasoning.CategoryOf(err))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	hits := make(chan struct{}, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		hits <- struct{}{}
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		<-r.Context().Done()
	}))
	defer srv.Close()
	p := httppolicy.New(1, 1)
	p.Timeout = 100 * time.Millisecond
	a := anthropic.New(anthropic.Options{APIBase: srv.URL, APIKey: config.NewSecret("k"), Model: "m", Policy: p})
	err := a.HealthCheck(t.Context())
	require.Equal(t, reasoning.CategoryTimeout, reasoning.CategoryOf(err))
	require.Len(t, hits, 2, "timed out, retried once, timed out again")
}

func TestHealthInvalidKey(t *testing.T) {
	t.Parallel()
	srv := adaptertest.New(t, adaptertest.Response{Status: 401, Body: `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`})
	err := adapter(srv.URL, 3).HealthCheck(t.Context())
	require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
	require.ErrorContains(t, err, "401")
	require.ErrorContains(t, err, "anthropic")
	require.Len(t, srv.Requests(), 1, "a 4xx is not retried")
}

package openai_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/adaptertest"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/httppolicy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/openai"
)

func q(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

func completion(content string) adaptertest.Response {
	return adaptertest.Response{Body: `{"id":"c1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":` + q(content) +
		`},"finish_reason":"stop"}],"usage":{"prompt_tokens":120,"completion_tokens":30,"total_tokens":150}}`}
}

type tokens struct {
	mu   sync.Mutex
	seen map[reasoning.Operation][2]int64
}

func (t *tokens) Retry(reasoning.Operation, string) {}
func (t *tokens) Tokens(op reasoning.Operation, p, c int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.seen == nil {
		t.seen = map[reasoning.Operation][2]int64{}
	}
	t.seen[op] = [2]int64{p, c}
}

func adapter(srv *adaptertest.Server, base, model string, retries int64, obs reasoning.Observer) *openai.Provider {
	p := httppolicy.New(5, retries)
	p.InitialBackoff, p.MaxBackoff = time.Millisecond, time.Millisecond
	return openai.New(openai.Options{APIBase: srv.URL + base, APIKey: config.NewSecret("sk-test"), Model: model, Policy: p, Observer: obs})
}

var testBundle = bundle.New("SYSTEM <TEXT> & more", "CLS", "ESC", "STY", "TPL")

func classifyReq() reasoning.ClassificationRequest {
	return reasoning.ClassificationRequest{SessionID: "d-1", DisputeID: "d-1", InitiatorRole: "seller", Bundle: testBundle}
}

func TestRequests(t *testing.T) {
	t.Parallel()
	classifyAnswer := `{"classification":"coordination_failure_resolvable","confidence":0.87,"suggested_action":"summarize","rationale":"aligned","flags":[]}`
	summaryAnswer := "Buyer confirmed the transfer.\nSUGGESTED_NEXT_STEP: Review the receipt.\nRATIONALE: aligned"
	sumReq := reasoning.SummaryRequest{SessionID: "s-1", DisputeID: "d-1", Bundle: testBundle, Classification: reasoning.LabelCoordinationFailureResolvable, Confidence: 0.9}
	tests := []struct {
		name, base, model, wantPath string
		call                        func(p *openai.Provider) error
		answer                      string
		wantBody                    string
	}{
		{
			name: "Classify", base: "/v1/", model: "gpt-4o-mini", wantPath: "/v1/chat/completions", answer: classifyAnswer,
			call: func(p *openai.Provider) error {
				r, err := p.Classify(t.Context(), classifyReq())
				if err == nil {
					require.Equal(t, reasoning.LabelCoordinationFailureResolvable, r.Classification)
					require.InDelta(t, 0.87, r.Confidence, 1e-9)
					require.Equal(t, reasoning.ActionSummarize, r.Action.Kind)
					require.Equal(t, "aligned", r.Rationale.Reveal())
				}
				return err
			},
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"system","content":` + q(testBundle.System) + `},{"role":"user","content":` +
				q(reasoning.ClassificationPrompt(classifyReq())) + `}],"response_format":{"type":"json_object"},"temperature":0.0}`,
		},
		{
			name: "ClassifyGPT5OmitsTemperature", base: "/v1", model: "gpt-5-mini", wantPath: "/v1/chat/completions", answer: classifyAnswer,
			call: func(p *openai.Provider) error { _, err := p.Classify(t.Context(), classifyReq()); return err },
			wantBody: `{"model":"gpt-5-mini","messages":[{"role":"system","content":` + q(testBundle.System) + `},{"role":"user","content":` +
				q(reasoning.ClassificationPrompt(classifyReq())) + `}],"response_format":{"type":"json_object"}}`,
		},
		{
			name: "Summarize", base: "/v1", model: "gpt-4o-mini", wantPath: "/v1/chat/completions", answer: summaryAnswer,
			call: func(p *openai.Provider) error {
				r, err := p.Summarize(t.Context(), sumReq)
				if err == nil {
					require.Equal(t, "Buyer confirmed the transfer.", r.SummaryText)
					require.Equal(t, "Review the receipt.", r.SuggestedNextStep)
				}
				return err
			},
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"system","content":` + q(testBundle.System) + `},{"role":"user","content":` +
				q(reasoning.SummaryPrompt(sumReq)) + `}],"temperature":0.2}`,
		},
		{
			name: "SummarizeGPT5", base: "/v1", model: "gpt-5", wantPath: "/v1/chat/completions", answer: summaryAnswer,
			call: func(p *openai.Provider) error { _, err := p.Summarize(t.Context(), sumReq); return err },
			wantBody: `{"model":"gpt-5","messages":[{"role":"system","content":` + q(testBundle.System) + `},{"role":"user","content":` +
				q(reasoning.SummaryPrompt(sumReq)) + `}]}`,
		},
		{
			name: "Health", base: "/v1", model: "gpt-4o-mini", wantPath: "/v1/chat/completions", answer: "pong",
			call:     func(p *openai.Provider) error { return p.HealthCheck(t.Context()) },
			wantBody: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"ping"}],"temperature":0.0}`,
		},
		{
			// PPQ.ai's api_base is the bare host: no /v1 is added.
			name: "PPQBareHost", base: "", model: "ppq/autoclaw", wantPath: "/chat/completions", answer: classifyAnswer,
			call: func(p *openai.Provider) error { _, err := p.Classify(t.Context(), classifyReq()); return err },
			wantBody: `{"model":"ppq/autoclaw","messages":[{"role":"system","content":` + q(testBundle.System) + `},{"role":"user","content":` +
				q(reasoning.ClassificationPrompt(classifyReq())) + `}],"response_format":{"type":"json_object"},"temperature":0.0}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := adaptertest.New(t, completion(tt.answer))
			obs := &tokens{}
			p := adapter(srv, tt.base, tt.model, 0, obs)
			require.NoError(t, tt.call(p))
			reqs := srv.Requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			require.Equal(t, "POST", r.Method)
			require.Equal(t, tt.wantPath, r.Path)
			require.Equal(t, "Bearer sk-test", r.Header.Get("Authorization"))
			require.Equal(t, "application/json", r.Header.Get("Content-Type"))
			require.Equal(t, tt.wantBody, string(r.Body))
			require.Len(t, obs.seen, 1, "usage reported")
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
		{"EmptyChoices", adaptertest.Response{Body: `{"choices":[]}`}, 2, reasoning.CategoryMalformedResponse, "empty choices", 1},
		{"NullContent", adaptertest.Response{Body: `{"choices":[{"message":{"role":"assistant","content":null}}]}`}, 2, reasoning.CategoryMalformedResponse, "empty choices", 1},
		{"EnvelopeNotJSON", adaptertest.Response{Body: `<html>`}, 2, reasoning.CategoryMalformedResponse, "envelope", 1},
		{"ProseNotJSON", completion("Sure! The dispute seems fine."), 2, reasoning.CategoryMalformedResponse, "not JSON", 1},
		{"InvalidKey", adaptertest.Response{Status: 401, Body: `{"error":{"message":"Incorrect API key"}}`}, 3, reasoning.CategoryUnreachable, "http 401", 1},
		{"ModelNotFound", adaptertest.Response{Status: 404, Body: `{"error":{"message":"model not found"}}`}, 3, reasoning.CategoryUnreachable, "http 404", 1},
		{"RateLimitedAlways", adaptertest.Response{Status: 429, Body: `{"error":{"message":"slow down"}}`}, 2, reasoning.CategoryUnreachable, "http 429", 3},
		{"ServerError", adaptertest.Response{Status: 500, Body: `oops`}, 1, reasoning.CategoryUnreachable, "http 500: oops", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := adaptertest.New(t, tt.resp)
			_, err := adapter(srv, "/v1", "gpt-4o-mini", tt.retries, nil).Classify(t.Context(), classifyReq())
			require.Equal(t, tt.wantCat, reasoning.CategoryOf(err))
			require.ErrorContains(t, err, tt.wantErr)
			require.Len(t, srv.Requests(), tt.wantHits)
		})
	}
}

func TestRetryThenSuccess(t *testing.T) {
	t.Parallel()
	srv := adaptertest.New(t,
		adaptertest.Response{Status: 429, Header: map[string]string{"Retry-After": "0"}, Body: "{}"},
		adaptertest.Response{Status: 503, Body: "{}"},
		completion(`{"classification":"unclear","confidence":0.4,"suggested_action":"ask_clarification","buyer_clarification":"b?","seller_clarification":"s?"}`))
	r, err := adapter(srv, "/v1", "gpt-4o-mini", 2, nil).Classify(t.Context(), classifyReq())
	require.NoError(t, err)
	require.Equal(t, "b?", r.Action.BuyerText)
	reqs := srv.Requests()
	require.Len(t, reqs, 3)
	for _, rq := range reqs[1:] {
		require.Equal(t, string(reqs[0].Body), string(rq.Body), "every attempt sends the same bytes")
	}
}

func TestKeyNotInErrors(t *testing.T) {
	t.Parallel()
	srv := adaptertest.New(t, adaptertest.Response{Status: 401, Body: `{"error":"bad"}`})
	_, err := adapter(srv, "/v1", "gpt-4o-mini", 0, nil).Classify(t.Context(), classifyReq())
	require.Error(t, err)
	require.NotContains(t, err.Error(), "sk-test")
}

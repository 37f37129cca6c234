// Package openai is the reasoning adapter for the OpenAI chat completions
// API and everything that speaks it (vLLM, llama.cpp, Ollama, LiteLLM,
// PPQ.ai): POST {api_base}/chat/completions with a bearer key. See
// docs/mediation.md#providers.
package openai

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/httppolicy"
)

// Options configure the adapter.
type Options struct {
	// APIBase is the endpoint base, e.g. https://api.openai.com/v1 (PPQ.ai:
	// https://api.ppq.ai, no /v1). A trailing "/" is ignored.
	APIBase string
	// APIKey is the bearer credential.
	APIKey config.Secret
	// Model is the model name.
	Model string
	// Policy is the HTTP call policy.
	Policy httppolicy.Policy
	// Logger receives debug lines (sizes and hash prefixes only).
	Logger *slog.Logger
	// Observer counts token usage (nil: none).
	Observer reasoning.Observer
}

// Provider is the OpenAI-compatible adapter.
type Provider struct {
	o   Options
	url string
}

// New returns the adapter.
func New(o Options) *Provider {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Provider{o: o, url: strings.TrimRight(o.APIBase, "/") + "/chat/completions"}
}

// URL is the chat completions endpoint the adapter posts to.
func (p *Provider) URL() string { return p.url }

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type responseFormat struct {
	Type string `json:"type"`
}

// request is the body; field order is the wire order.
type request struct {
	Model          string          `json:"model"`
	Messages       []message       `json:"messages"`
	ResponseFormat *responseFormat `json:"response_format,omitempty"`
	Temperature    json.RawMessage `json:"temperature,omitempty"`
}

// Temperatures of the operations, as sent.
var (
	tempClassify  = json.RawMessage("0.0")
	tempSummarize = json.RawMessage("0.2")
	tempHealth    = json.RawMessage("0.0")
)

// temperature is t, or nothing for gpt-5 models (which accept only their
// default).
func (p *Provider) temperature(t json.RawMessage) json.RawMessage {
	if strings.HasPrefix(p.o.Model, "gpt-5") {
		return nil
	}
	return t
}

// Classify implements reasoning.Provider.
func (p *Provider) Classify(ctx context.Context, req reasoning.ClassificationRequest) (reasoning.ClassificationResponse, error) {
	content, err := p.complete(ctx, reasoning.OpClassify, request{
		Model: p.o.Model,
		Messages: []message{
			{Role: "system", Content: req.Bundle.System},
			{Role: "user", Content: reasoning.ClassificationPrompt(req)},
		},
		ResponseFormat: &responseFormat{Type: "json_object"},
		Temperature:    p.temperature(tempClassify),
	})
	if err != nil {
		return reasoning.ClassificationResponse{}, err
	}
	return reasoning.ParseClassification(content)
}

// Summarize implements reasoning.Provider.
func (p *Provider) Summarize(ctx context.Context, req reasoning.SummaryRequest) (reasoning.SummaryResponse, error) {
	content, err := p.complete(ctx, reasoning.OpSummarize, request{
		Model: p.o.Model,
		Messages: []message{
			{Role: "system", Content: req.Bundle.System},
			{Role: "user", Content: reasoning.SummaryPrompt(req)},
		},
		Temperature: p.temperature(tempSummarize),
	})
	if err != nil {
		return reasoning.SummaryResponse{}, err
	}
	return reasoning.ParseSummary(content)
}

// HealthCheck implements reasoning.Provider: a one-word completion.
func (p *Provider) HealthCheck(ctx context.Context) error {
	_, err := p.complete(ctx, reasoning.OpHealth, request{
		Model:       p.o.Model,
		Messages:    []message{{Role: "user", Content: "ping"}},
		Temperature: p.temperature(tempHealth),
	})
	return err
}

// envelope is the part of the answer the adapter reads.
type envelope struct {
	Choices []struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

func (p *Provider) complete(ctx context.Context, op reasoning.Operation, body request) (string, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return "", &reasoning.Error{Category: reasoning.CategoryUnknown, Msg: "encode request", Err: err}
	}
	raw, err := p.o.Policy.Do(ctx, op, func(ctx context.Context) (*http.Request, error) {
		r, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(b))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Authorization", "Bearer "+p.o.APIKey.Reveal())
		r.Header.Set("Content-Type", "application/json")
		return r, nil
	})
	if err != nil {
		return "", err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", reasoning.Malformed("response envelope is not JSON: %v", err)
	}
	if env.Usage != nil && p.o.Observer != nil {
		p.o.Observer.Tokens(op, env.Usage.PromptTokens, env.Usage.CompletionTokens)
	}
	if len(env.Choices) == 0 || env.Choices[0].Message.Content == nil {
		return "", reasoning.Malformed("empty choices")
	}
	content := *env.Choices[0].Message.Content
	sum := sha256.Sum256([]byte(content))
	p.o.Logger.Debug("reasoning response received", "operation", string(op), "bytes", len(content), "sha256_prefix", hex.EncodeToString(sum[:8]))
	return content, nil
}

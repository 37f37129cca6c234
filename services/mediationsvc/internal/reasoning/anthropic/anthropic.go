// Package anthropic is the reasoning adapter for Anthropic's Messages API:
// POST {api_base}/v1/messages with x-api-key and anthropic-version
// 2023-06-01, the system text as a top-level field, and the answer read by
// concatenating every text block. See docs/mediation.md#providers.
package anthropic

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

// Version is the anthropic-version header.
const Version = "2023-06-01"

// max_tokens per operation.
const (
	maxTokensClassify  = 2048
	maxTokensSummarize = 4096
	maxTokensHealth    = 8
)

// Options configure the adapter.
type Options struct {
	// APIBase is the endpoint base, with or without a trailing /v1.
	APIBase string
	// APIKey is the x-api-key credential.
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

// Provider is the Anthropic adapter.
type Provider struct {
	o   Options
	url string
}

// New returns the adapter.
func New(o Options) *Provider {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Policy.ErrorPrefix = "anthropic http"
	o.Policy.ShowRetryAfter = true
	return &Provider{o: o, url: MessagesURL(o.APIBase)}
}

// MessagesURL normalises api_base: strip a trailing "/", then one trailing
// "/v1", then append "/v1/messages".
func MessagesURL(apiBase string) string {
	base := strings.TrimRight(apiBase, "/")
	base = strings.TrimSuffix(base, "/v1")
	return base + "/v1/messages"
}

// URL is the messages endpoint the adapter posts to.
func (p *Provider) URL() string { return p.url }

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// request is the body; field order is the wire order.
type request struct {
	Model       string          `json:"model"`
	MaxTokens   int             `json:"max_tokens"`
	System      string          `json:"system,omitempty"`
	Messages    []message       `json:"messages"`
	Temperature json.RawMessage `json:"temperature"`
}

// Classify implements reasoning.Provider.
func (p *Provider) Classify(ctx context.Context, req reasoning.ClassificationRequest) (reasoning.ClassificationResponse, error) {
	text, err := p.complete(ctx, reasoning.OpClassify, request{
		Model:       p.o.Model,
		MaxTokens:   maxTokensClassify,
		System:      req.Bundle.System,
		Messages:    []message{{Role: "user", Content: reasoning.ClassificationPrompt(req)}},
		Temperature: json.RawMessage("0.0"),
	})
	if err != nil {
		return reasoning.ClassificationResponse{}, err
	}
	return reasoning.ParseClassification(text)
}

// Summarize implements reasoning.Provider.
func (p *Provider) Summarize(ctx context.Context, req reasoning.SummaryRequest) (reasoning.SummaryResponse, error) {
	text, err := p.complete(ctx, reasoning.OpSummarize, request{
		Model:       p.o.Model,
		MaxTokens:   maxTokensSummarize,
		System:      req.Bundle.System,
		Messages:    []message{{Role: "user", Content: reasoning.SummaryPrompt(req)}},
		Temperature: json.RawMessage("0.2"),
	})
	if err != nil {
		return reasoning.SummaryResponse{}, err
	}
	return reasoning.ParseSummary(text)
}

// HealthCheck implements reasoning.Provider: an 8-token "ping".
func (p *Provider) HealthCheck(ctx context.Context) error {
	_, err := p.complete(ctx, reasoning.OpHealth, request{
		Model:       p.o.Model,
		MaxTokens:   maxTokensHealth,
		Messages:    []message{{Role: "user", Content: "ping"}},
		Temperature: json.RawMessage("0.0"),
	})
	return err
}

type envelope struct {
	Content []struct {
		Type string  `json:"type"`
		Text *string `json:"text"`
	} `json:"content"`
	Usage *struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
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
		r.Header.Set("x-api-key", p.o.APIKey.Reveal())
		r.Header.Set("anthropic-version", Version)
		r.Header.Set("content-type", "application/json")
		return r, nil
	})
	if err != nil {
		return "", err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return "", reasoning.Malformed("anthropic response envelope is not JSON: %v", err)
	}
	if env.Usage != nil && p.o.Observer != nil {
		p.o.Observer.Tokens(op, env.Usage.InputTokens, env.Usage.OutputTokens)
	}
	var text strings.Builder
	found := false
	for _, c := range env.Content {
		if c.Type != "text" {
			continue
		}
		if c.Text == nil {
			return "", reasoning.Malformed("anthropic text block without text")
		}
		found = true
		text.WriteString(*c.Text)
	}
	if !found {
		return "", reasoning.Malformed("no text block in anthropic response")
	}
	out := text.String()
	sum := sha256.Sum256([]byte(out))
	p.o.Logger.Debug("reasoning response received", "operation", string(op), "bytes", len(out), "sha256_prefix", hex.EncodeToString(sum[:8]))
	return out, nil
}

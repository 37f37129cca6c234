// Package providers builds the reasoning provider that [reasoning].provider
// names. It is the only place that knows the names; everything else holds
// a reasoning.Provider. See docs/mediation.md#providers.
package providers

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/anthropic"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/httppolicy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/openai"
)

// The provider names.
const (
	OpenAI           = "openai"
	OpenAICompatible = "openai-compatible"
	Anthropic        = "anthropic"
	PPQAI            = "ppqai"
	OpenClaw         = "openclaw"
)

// Settings are what a provider is built from.
type Settings struct {
	// Name is [reasoning].provider.
	Name string
	// Model is [reasoning].model.
	Model string
	// APIBase is [reasoning].api_base.
	APIBase string
	// APIKey is the credential read from the variable api_key_env names.
	APIKey config.Secret
	// RequestTimeoutSeconds is [reasoning].request_timeout_seconds.
	RequestTimeoutSeconds int64
	// FollowupRetryCount is [reasoning].followup_retry_count.
	FollowupRetryCount int64
	// HTTPClient sends the requests (nil: a client without its own
	// timeout; the policy bounds every attempt).
	HTTPClient *http.Client
	// Clock times retry waits (nil: real).
	Clock clockwork.Clock
	// Logger receives the adapters' debug lines.
	Logger *slog.Logger
	// Observer counts retries and tokens (nil: none).
	Observer reasoning.Observer
}

// UnknownError is the configuration error of an unknown provider name.
type UnknownError struct{ Name string }

// Error implements error, in the reference's words.
func (e *UnknownError) Error() string {
	return fmt.Sprintf("unknown reasoning provider '%s'; supported: openai, openai-compatible, anthropic (ppqai, openclaw are declared but not yet implemented)", e.Name)
}

// Build returns the provider s names. openai and openai-compatible share
// one adapter; ppqai and openclaw build a provider whose every call fails
// with the "declared but not yet implemented" error (so the start-up
// health check fails and phase 3 stays off); any other name is an
// *UnknownError. A model or api_base that cannot work is an error too.
func Build(s Settings) (reasoning.Provider, error) {
	policy := httppolicy.New(s.RequestTimeoutSeconds, s.FollowupRetryCount)
	policy.Client = s.HTTPClient
	policy.Clock = s.Clock
	policy.Observer = s.Observer
	switch s.Name {
	case OpenAI, OpenAICompatible, Anthropic:
	case PPQAI, OpenClaw:
		return notImplemented{name: s.Name}, nil
	default:
		return nil, &UnknownError{Name: s.Name}
	}
	if strings.TrimSpace(s.Model) == "" {
		return nil, fmt.Errorf("[reasoning].model is empty")
	}
	if u, err := url.Parse(s.APIBase); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("[reasoning].api_base %q must be an http or https URL", s.APIBase)
	}
	if s.Name == Anthropic {
		return anthropic.New(anthropic.Options{
			APIBase: s.APIBase, APIKey: s.APIKey, Model: s.Model, Policy: policy, Logger: s.Logger, Observer: s.Observer,
		}), nil
	}
	return openai.New(openai.Options{
		APIBase: s.APIBase, APIKey: s.APIKey, Model: s.Model, Policy: policy, Logger: s.Logger, Observer: s.Observer,
	}), nil
}

// notImplemented is a declared provider without an adapter yet.
type notImplemented struct{ name string }

func (n notImplemented) Classify(context.Context, reasoning.ClassificationRequest) (reasoning.ClassificationResponse, error) {
	return reasoning.ClassificationResponse{}, reasoning.NotImplemented(n.name)
}

func (n notImplemented) Summarize(context.Context, reasoning.SummaryRequest) (reasoning.SummaryResponse, error) {
	return reasoning.SummaryResponse{}, reasoning.NotImplemented(n.name)
}

func (n notImplemented) HealthCheck(context.Context) error { return reasoning.NotImplemented(n.name) }

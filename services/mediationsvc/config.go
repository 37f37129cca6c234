package mediationsvc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
)

// Config is mediationsvc's configuration, mapped from the [mediation],
// [reasoning] and [prompts] sections (internal/runner/mediationsvc.go).
type Config struct {
	// MediationEnabled is [mediation].enabled.
	MediationEnabled bool
	// MaxRounds is [mediation].max_rounds.
	MaxRounds int64
	// PartyResponseTimeout is [mediation].party_response_timeout_seconds
	// (0 disables the sweep).
	PartyResponseTimeout time.Duration
	// Reasoning is the [reasoning] section.
	Reasoning ReasoningConfig
	// Prompts are the five [prompts] paths.
	Prompts PromptPaths
	// Solvers are the configured solver pubkeys (hex), in config order:
	// the recipients of summaries, escalation notices and reports.
	Solvers []string
	// EscalationEnabled is [escalation].enabled: phase 4 sends the
	// escalation_handoff/v1 DM, so the compact phase-3 escalation DMs are
	// not sent.
	EscalationEnabled bool
	// Engine holds the [mediationsvc] knobs.
	Engine EngineConfig
}

// EngineConfig is the [mediationsvc] section (zero values: the engine's
// defaults).
type EngineConfig struct {
	// Tick is tick_seconds.
	Tick time.Duration
	// SessionLease is session_lease_seconds.
	SessionLease time.Duration
	// TakeTimeout is take_timeout_seconds.
	TakeTimeout time.Duration
	// StartRetryBase and StartRetryMax are start_retry_base_seconds and
	// start_retry_max_seconds.
	StartRetryBase, StartRetryMax time.Duration
	// StatusSettle is how long after a cant-do the dispute's status is
	// asked again (0: authprobe's default; tests shorten it).
	StatusSettle time.Duration
}

// PromptPaths are the five prompt bundle files ([prompts]).
type PromptPaths struct {
	// System is system_instructions_path.
	System string
	// Classification is classification_policy_path.
	Classification string
	// EscalationPolicy is escalation_policy_path.
	EscalationPolicy string
	// MediationStyle is mediation_style_path.
	MediationStyle string
	// MessageTemplates is message_templates_path.
	MessageTemplates string
}

func (p PromptPaths) paths() bundle.Paths {
	return bundle.Paths{
		System: p.System, Classification: p.Classification, EscalationPolicy: p.EscalationPolicy,
		MediationStyle: p.MediationStyle, MessageTemplates: p.MessageTemplates,
	}
}

// ReasoningConfig is the [reasoning] section.
type ReasoningConfig struct {
	// Enabled is [reasoning].enabled.
	Enabled bool
	// Provider is [reasoning].provider: openai, openai-compatible,
	// anthropic (ppqai and openclaw are declared, not implemented). An
	// unknown name is not a Validate error: phase 3 stays off and the
	// rest of the process runs.
	Provider string
	// Model is [reasoning].model.
	Model string
	// APIBase is [reasoning].api_base.
	APIBase string
	// APIKeyEnv is [reasoning].api_key_env: the name of the variable that
	// holds the credential.
	APIKeyEnv string
	// APIKey is the credential (from APIKeyEnv or APIKeyEnv_FILE; never
	// from the file, never logged).
	APIKey config.Secret
	// RequestTimeoutSeconds is [reasoning].request_timeout_seconds; each
	// attempt is bounded by max(it, 1) seconds.
	RequestTimeoutSeconds int64
	// FollowupRetryCount is [reasoning].followup_retry_count: attempts
	// after the first.
	FollowupRetryCount int64
	// HealthTTL is how long a health result is reused (0: 30 s).
	HealthTTL time.Duration
}

// Phase3Requested reports whether the configuration asks for phase 3.
func (c Config) Phase3Requested() bool { return c.MediationEnabled && c.Reasoning.Enabled }

// Validate checks what must stop the process. Everything else that keeps
// phase 3 from starting (an unknown provider, a missing prompt file, a
// failed health check) only turns phase 3 off, at Run. The credential
// rule keeps the reference's wording.
func (c Config) Validate() error {
	var errs []error
	if c.MaxRounds < 0 {
		errs = append(errs, fmt.Errorf("configuration error: [mediation].max_rounds must not be negative (got %d)", c.MaxRounds))
	}
	if c.PartyResponseTimeout < 0 {
		errs = append(errs, errors.New("configuration error: [mediation].party_response_timeout_seconds must not be negative"))
	}
	r := c.Reasoning
	if r.RequestTimeoutSeconds < 0 {
		errs = append(errs, fmt.Errorf("configuration error: [reasoning].request_timeout_seconds must not be negative (got %d)", r.RequestTimeoutSeconds))
	}
	if r.FollowupRetryCount < 0 {
		errs = append(errs, fmt.Errorf("configuration error: [reasoning].followup_retry_count must not be negative (got %d)", r.FollowupRetryCount))
	}
	if r.HealthTTL < 0 {
		errs = append(errs, errors.New("configuration error: reasoning health TTL must not be negative"))
	}
	if r.Enabled {
		name := strings.TrimSpace(r.APIKeyEnv)
		switch {
		case name == "":
			errs = append(errs, errors.New("configuration error: [reasoning].api_key_env is empty but [reasoning].enabled = true"))
		case !r.APIKey.IsSet():
			errs = append(errs, fmt.Errorf("configuration error: reasoning provider enabled but credential env var `%s` is unset or empty", name))
		}
	}
	return errors.Join(errs...)
}

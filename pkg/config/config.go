// Package config loads Serbero's configuration: the reference daemon's
// config.toml (sections [serbero] [mostro] [[relays]] [[solvers]] [timeouts]
// [mediation] [reasoning] [prompts] [chat] [escalation], same keys, same
// defaults, same SERBERO_* overrides) plus what the service split needs
// ([database], [server], [services], [relaygw]).
//
// Precedence, lowest first: built-in defaults, the TOML file, environment
// variables, command-line flags. An environment variable counts only when it
// is non-empty after trimming. Every scalar key can be overridden with
// SERBERO_<SECTION>_<KEY> (for example SERBERO_ESCALATION_ENABLED); the
// reference names SERBERO_PRIVATE_KEY, SERBERO_DB_PATH and SERBERO_LOG keep
// working. Secrets also accept a *_FILE variant naming a file to read.
//
// Key custody: Serbero's secret key ([serbero].private_key,
// SERBERO_PRIVATE_KEY, SERBERO_PRIVATE_KEY_FILE) is read only when the caller
// asks for it (the relaygw target). Config has no field for it; it travels as
// a Secret, which never prints its value.
package config

import (
	"fmt"
	"strings"
	"time"
)

// Target names one service, or all of them in one process.
type Target string

// The targets `serbero serve --target` accepts.
const (
	TargetRelaygw       Target = "relaygw"
	TargetIntakesvc     Target = "intakesvc"
	TargetAuthsvc       Target = "authsvc"
	TargetMediationsvc  Target = "mediationsvc"
	TargetEscalationsvc Target = "escalationsvc"
	TargetAll           Target = "all"
)

// Services lists the individual service targets in start order.
var Services = []Target{TargetRelaygw, TargetIntakesvc, TargetAuthsvc, TargetMediationsvc, TargetEscalationsvc}

// ParseTarget validates a --target value.
func ParseTarget(s string) (Target, error) {
	t := Target(strings.ToLower(strings.TrimSpace(s)))
	if t == TargetAll {
		return t, nil
	}
	for _, known := range Services {
		if t == known {
			return t, nil
		}
	}
	return "", fmt.Errorf("unknown target %q (want relaygw, intakesvc, authsvc, mediationsvc, escalationsvc or all)", s)
}

// Includes reports whether running t runs service s.
func (t Target) Includes(s Target) bool { return t == TargetAll || t == s }

// HoldsKey reports whether the target may load Serbero's secret key.
func (t Target) HoldsKey() bool { return t.Includes(TargetRelaygw) }

// UsesReasoning reports whether the target calls the reasoning provider (and
// so reads its credential).
func (t Target) UsesReasoning() bool { return t.Includes(TargetMediationsvc) }

// Config is the whole configuration. It never holds Serbero's secret key.
type Config struct {
	Chat       ChatConfig       `toml:"chat"`
	Database   DatabaseConfig   `toml:"database"`
	Escalation EscalationConfig `toml:"escalation"`
	Intakesvc  IntakesvcConfig  `toml:"intakesvc"`
	// Mediationsvc is the [mediationsvc] section: the engine's knobs.
	Mediationsvc MediationsvcConfig `toml:"mediationsvc"`
	Mediation    MediationConfig    `toml:"mediation"`
	Mostro       MostroConfig       `toml:"mostro"`
	Prompts      PromptsConfig      `toml:"prompts"`
	Reasoning    ReasoningConfig    `toml:"reasoning"`
	Relaygw      RelaygwConfig      `toml:"relaygw"`
	Relays       []RelayConfig      `toml:"relays"`
	Serbero      SerberoConfig      `toml:"serbero"`
	Server       ServerConfig       `toml:"server"`
	Services     ServicesConfig     `toml:"services"`
	Solvers      []SolverConfig     `toml:"solvers"`
	Timeouts     TimeoutsConfig     `toml:"timeouts"`
}

// SerberoConfig is the [serbero] section, minus private_key (see package doc).
type SerberoConfig struct {
	// DBPath is the reference's SQLite path. Accepted for compatibility and
	// ignored: the database is [database].url.
	DBPath string `toml:"db_path" env:"SERBERO_DB_PATH"`
	// LogLevel is debug, info, warn or error. The reference's EnvFilter
	// syntax ("serbero=debug,nostr_sdk=warn") is accepted: the serbero
	// directive, else the first bare level, wins.
	LogLevel string `toml:"log_level" env:"SERBERO_LOG"`
}

// MostroConfig is the [mostro] section.
type MostroConfig struct {
	// Pubkey is the Mostro node's pubkey (hex or npub), normalised to hex.
	Pubkey string `toml:"pubkey"`
}

// RelayConfig is one [[relays]] entry.
type RelayConfig struct {
	URL string `toml:"url"`
}

// Permission is a solver's Mostro permission as Serbero sees it.
type Permission string

// Solver permissions. "read-write" in the file means PermissionWrite.
const (
	PermissionRead  Permission = "read"
	PermissionWrite Permission = "write"
)

// SolverConfig is one [[solvers]] entry. Pubkey is kept verbatim: an invalid
// value is not a config error, it fails (and is recorded) at send time, as in
// the reference.
type SolverConfig struct {
	Permission Permission `toml:"permission"`
	Pubkey     string     `toml:"pubkey"`
}

// CanWrite reports whether the solver may settle or cancel in Mostro.
func (s SolverConfig) CanWrite() bool { return s.Permission == PermissionWrite }

// TimeoutsConfig is the [timeouts] section (phase 2).
type TimeoutsConfig struct {
	RenotificationCheckIntervalSeconds int64 `toml:"renotification_check_interval_seconds"`
	RenotificationSeconds              int64 `toml:"renotification_seconds"`
}

// RenotificationCheckInterval is the timer period; 0 is treated as 1 s, as
// in the reference.
func (t TimeoutsConfig) RenotificationCheckInterval() time.Duration {
	return time.Duration(max(t.RenotificationCheckIntervalSeconds, 1)) * time.Second
}

// Renotification is the age after which a notified dispute is re-announced.
func (t TimeoutsConfig) Renotification() time.Duration {
	return time.Duration(t.RenotificationSeconds) * time.Second
}

// MediationConfig is the [mediation] section (phase 3; the solver_auth_*
// knobs drive authsvc).
type MediationConfig struct {
	Enabled                           bool  `toml:"enabled"`
	MaxRounds                         int64 `toml:"max_rounds"`
	PartyResponseTimeoutSeconds       int64 `toml:"party_response_timeout_seconds"`
	SolverAuthRetryInitialSeconds     int64 `toml:"solver_auth_retry_initial_seconds"`
	SolverAuthRetryMaxAttempts        int64 `toml:"solver_auth_retry_max_attempts"`
	SolverAuthRetryMaxIntervalSeconds int64 `toml:"solver_auth_retry_max_interval_seconds"`
	SolverAuthRetryMaxTotalSeconds    int64 `toml:"solver_auth_retry_max_total_seconds"`
}

// ReasoningConfig is the [reasoning] section. APIKey never comes from the
// file: it is read from the environment variable named by APIKeyEnv (or the
// file named by <APIKeyEnv>_FILE), and only when reasoning is enabled.
type ReasoningConfig struct {
	APIBase               string `toml:"api_base"`
	APIKey                Secret `toml:"-"`
	APIKeyEnv             string `toml:"api_key_env"`
	Enabled               bool   `toml:"enabled"`
	FollowupRetryCount    int64  `toml:"followup_retry_count"`
	Model                 string `toml:"model"`
	Provider              string `toml:"provider"`
	RequestTimeoutSeconds int64  `toml:"request_timeout_seconds"`
}

// PromptsConfig is the [prompts] section: the five prompt bundle files.
type PromptsConfig struct {
	ClassificationPolicyPath string `toml:"classification_policy_path"`
	EscalationPolicyPath     string `toml:"escalation_policy_path"`
	MediationStylePath       string `toml:"mediation_style_path"`
	MessageTemplatesPath     string `toml:"message_templates_path"`
	SystemInstructionsPath   string `toml:"system_instructions_path"`
}

// ChatConfig is the [chat] section.
type ChatConfig struct {
	InboundFetchIntervalSeconds int64 `toml:"inbound_fetch_interval_seconds"`
	// SendLegacyForm also sends each dispute-chat line in the legacy v1
	// gift-wrap form, for clients that do not read kind 14 yet.
	SendLegacyForm bool `toml:"send_legacy_form"`
}

// EscalationConfig is the [escalation] section (phase 4).
type EscalationConfig struct {
	// ClaimTimeoutSeconds is how long a replica owns a claimed handoff
	// before the rescuer returns it to the queue.
	ClaimTimeoutSeconds int64 `toml:"claim_timeout_seconds"`
	// DispatchIntervalSeconds is the poll fallback period (LISTEN/NOTIFY
	// wakes the dispatcher at once; polling catches anything missed).
	DispatchIntervalSeconds int64 `toml:"dispatch_interval_seconds"`
	Enabled                 bool  `toml:"enabled"`
	FallbackToAllSolvers    bool  `toml:"fallback_to_all_solvers"`
}

// IntakesvcConfig is the [intakesvc] section: intakesvc's own knobs
// outside the reference's sections.
type IntakesvcConfig struct {
	// RetentionDays is how long intakesvc keeps its change feed, finished
	// outbox rows and quarantine at least; 0 keeps everything.
	RetentionDays int64 `toml:"retention_days"`
	// RetentionIntervalSeconds is the pause between two retention runs.
	RetentionIntervalSeconds int64 `toml:"retention_interval_seconds"`
}

// MediationsvcConfig is the [mediationsvc] section: the mediation engine's
// knobs outside the reference's sections (the reference hard-codes them).
type MediationsvcConfig struct {
	// TickSeconds is the safety-net tick: due start retries and reports.
	TickSeconds int64 `toml:"tick_seconds"`
	// SessionLeaseSeconds is how long a replica holds a session without
	// renewing: a dead replica's sessions move on within it.
	SessionLeaseSeconds int64 `toml:"session_lease_seconds"`
	// TakeTimeoutSeconds bounds the wait for Mostro's answer to
	// admin-take-dispute.
	TakeTimeoutSeconds int64 `toml:"take_timeout_seconds"`
	// StartRetryBaseSeconds and StartRetryMaxSeconds shape the backoff of a
	// dispute whose start stopped (doubling from base up to max).
	StartRetryBaseSeconds int64 `toml:"start_retry_base_seconds"`
	StartRetryMaxSeconds  int64 `toml:"start_retry_max_seconds"`
}

// DatabaseConfig is the [database] section.
type DatabaseConfig struct {
	// MaxConns caps the pgx pool of each process.
	MaxConns int64 `toml:"max_conns"`
	// URL is a libpq connection string or URL. Secret: also
	// SERBERO_DATABASE_URL_FILE.
	URL Secret `toml:"url"`
}

// ServerConfig is the [server] section: how this process serves.
type ServerConfig struct {
	// AuthToken is the shared service-to-service bearer token
	// (SERBERO_SERVER_AUTH_TOKEN or SERBERO_AUTH_TOKEN, or their _FILE
	// variants). Required unless the target is "all", which generates one.
	AuthToken Secret `toml:"auth_token" env:"SERBERO_AUTH_TOKEN"`
	// DrainSeconds is how long the server reports NOT_SERVING before it
	// stops accepting RPCs, so load balancers can move traffic away.
	DrainSeconds int64 `toml:"drain_seconds"`
	// GRPCListen is the gRPC listen address.
	GRPCListen string `toml:"grpc_listen" env:"SERBERO_GRPC_LISTEN"`
	// LogFormat is json (production) or text (development).
	LogFormat string `toml:"log_format" env:"SERBERO_LOG_FORMAT"`
	// MetricsListen is the Prometheus /metrics listen address; empty
	// disables it.
	MetricsListen string `toml:"metrics_listen" env:"SERBERO_METRICS_LISTEN"`
	// Reflection registers gRPC server reflection.
	Reflection bool `toml:"reflection"`
	// ShutdownGraceSeconds bounds the graceful stop after the drain.
	ShutdownGraceSeconds int64 `toml:"shutdown_grace_seconds"`
}

// Drain is DrainSeconds as a duration.
func (s ServerConfig) Drain() time.Duration { return time.Duration(s.DrainSeconds) * time.Second }

// ShutdownGrace is ShutdownGraceSeconds as a duration.
func (s ServerConfig) ShutdownGrace() time.Duration {
	return time.Duration(s.ShutdownGraceSeconds) * time.Second
}

// ServicesConfig is the [services] section: where each service is reached.
// Empty means "this process" (the all target dials its own listener).
type ServicesConfig struct {
	Authsvc       string `toml:"authsvc" env:"SERBERO_AUTHSVC_ADDR"`
	Escalationsvc string `toml:"escalationsvc" env:"SERBERO_ESCALATIONSVC_ADDR"`
	Intakesvc     string `toml:"intakesvc" env:"SERBERO_INTAKESVC_ADDR"`
	Mediationsvc  string `toml:"mediationsvc" env:"SERBERO_MEDIATIONSVC_ADDR"`
	Relaygw       string `toml:"relaygw" env:"SERBERO_RELAYGW_ADDR"`
}

// RelaygwConfig is the [relaygw] section: relay transport tuning.
type RelaygwConfig struct {
	// DevRelayListen is where `serve --dev` starts the embedded relay when
	// no [[relays]] are configured.
	DevRelayListen string `toml:"dev_relay_listen"`
	// GiftWrapLookbackSeconds is how far back gift-wrap subscriptions reach;
	// NIP-59 back-dates wraps by up to two days, so at least 172800.
	GiftWrapLookbackSeconds int64 `toml:"giftwrap_lookback_seconds"`
	// PublishTimeoutSeconds bounds the wait for each relay's OK.
	PublishTimeoutSeconds int64 `toml:"publish_timeout_seconds"`
	// ReconnectMaxBackoffSeconds caps the reconnect backoff.
	ReconnectMaxBackoffSeconds int64 `toml:"reconnect_max_backoff_seconds"`
	// ResubscribeMarginSeconds is subtracted from the durable cursor when
	// subscribing again after a reconnect or restart.
	ResubscribeMarginSeconds int64 `toml:"resubscribe_margin_seconds"`
	// DisputeBackfillSeconds is how far before its first start relaygw
	// reads the Mostro node's dispute events. 0 (the default) starts at
	// now, as the reference does: a new deployment does not tell solvers
	// about the relays' history. Events from before the first start are
	// streamed with backfill set (see docs/relaygw.md#first-start).
	DisputeBackfillSeconds int64 `toml:"dispute_backfill_seconds"`
	// RetentionDays is how long relaygw keeps its stored events, chat
	// lines and idempotency records at least; 0 keeps everything.
	RetentionDays int64 `toml:"retention_days"`
	// RetentionIntervalSeconds is the pause between two retention runs.
	RetentionIntervalSeconds int64 `toml:"retention_interval_seconds"`
}

// Default returns the configuration with every default applied. The values
// of the reference sections are the reference daemon's.
func Default() Config {
	return Config{
		Serbero:  SerberoConfig{DBPath: "serbero.db", LogLevel: "info"},
		Timeouts: TimeoutsConfig{RenotificationSeconds: 300, RenotificationCheckIntervalSeconds: 60},
		Mediation: MediationConfig{
			MaxRounds:                         2,
			PartyResponseTimeoutSeconds:       1800,
			SolverAuthRetryInitialSeconds:     60,
			SolverAuthRetryMaxIntervalSeconds: 3600,
			SolverAuthRetryMaxTotalSeconds:    86400,
			SolverAuthRetryMaxAttempts:        24,
		},
		Reasoning: ReasoningConfig{
			Provider:              "openai",
			Model:                 "gpt-4o-mini",
			APIBase:               "https://api.openai.com/v1",
			APIKeyEnv:             "SERBERO_REASONING_API_KEY",
			RequestTimeoutSeconds: 30,
			FollowupRetryCount:    1,
		},
		Prompts: PromptsConfig{
			SystemInstructionsPath:   "./prompts/phase3-system.md",
			ClassificationPolicyPath: "./prompts/phase3-classification.md",
			EscalationPolicyPath:     "./prompts/phase3-escalation-policy.md",
			MediationStylePath:       "./prompts/phase3-mediation-style.md",
			MessageTemplatesPath:     "./prompts/phase3-message-templates.md",
		},
		Chat:       ChatConfig{InboundFetchIntervalSeconds: 10},
		Escalation: EscalationConfig{DispatchIntervalSeconds: 30, ClaimTimeoutSeconds: 60},
		Database:   DatabaseConfig{MaxConns: 10},
		Intakesvc:  IntakesvcConfig{RetentionDays: 90, RetentionIntervalSeconds: 3600},
		Mediationsvc: MediationsvcConfig{TickSeconds: 30, SessionLeaseSeconds: 30, TakeTimeoutSeconds: 15,
			StartRetryBaseSeconds: 30, StartRetryMaxSeconds: 3600},
		Server: ServerConfig{
			GRPCListen:           "127.0.0.1:50051",
			MetricsListen:        "127.0.0.1:9464",
			LogFormat:            "json",
			DrainSeconds:         5,
			ShutdownGraceSeconds: 10,
			Reflection:           true,
		},
		Relaygw: RelaygwConfig{
			PublishTimeoutSeconds:      10,
			ReconnectMaxBackoffSeconds: 60,
			ResubscribeMarginSeconds:   60,
			GiftWrapLookbackSeconds:    7 * 24 * 3600,
			DevRelayListen:             "127.0.0.1:7447",
			RetentionDays:              90,
			RetentionIntervalSeconds:   3600,
		},
	}
}

// RelayURLs returns the configured relay URLs in order.
func (c *Config) RelayURLs() []string {
	urls := make([]string, 0, len(c.Relays))
	for _, r := range c.Relays {
		urls = append(urls, r.URL)
	}
	return urls
}

// WriteSolvers returns the solvers with write permission, in config order.
func (c *Config) WriteSolvers() []SolverConfig {
	var out []SolverConfig
	for _, s := range c.Solvers {
		if s.CanWrite() {
			out = append(out, s)
		}
	}
	return out
}

package config

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/serbero/serbero/pkg/nostrkey"
)

// Validate checks every rule and returns all problems at once, each naming
// its key. The reference's checks come first and keep its wording (see
// docs/config.md#validation). The Mostro pubkey's form is checked by Load
// after Validate, as the reference parses it after loading.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("configuration error: "+format, args...))
	}

	// The reference's rules; the reasoning credential rule is
	// ValidateReasoningCredential, checked by Load for mediationsvc only.
	if c.Escalation.DispatchIntervalSeconds <= 0 {
		bad("[escalation].dispatch_interval_seconds must be a positive integer (got %d)", c.Escalation.DispatchIntervalSeconds)
	}

	// Identity of the Mostro node (a missing key is a TOML error in the
	// reference: the key is required).
	if strings.TrimSpace(c.Mostro.Pubkey) == "" {
		bad("[mostro].pubkey is required")
	}

	for i, r := range c.Relays {
		u, err := url.Parse(strings.TrimSpace(r.URL))
		switch {
		case strings.TrimSpace(r.URL) == "":
			bad("relays[%d].url is empty", i)
		case err != nil:
			bad("relays[%d].url %q: %v", i, r.URL, err)
		case u.Scheme != "ws" && u.Scheme != "wss":
			bad("relays[%d].url %q: scheme must be ws or wss", i, r.URL)
		case u.Host == "":
			bad("relays[%d].url %q: missing host", i, r.URL)
		}
	}
	for i := range c.Solvers {
		s := &c.Solvers[i]
		if strings.TrimSpace(s.Pubkey) == "" {
			bad("solvers[%d].pubkey is required", i)
		}
		if s.Permission == "" {
			s.Permission = PermissionRead
		}
	}

	nonNegative := func(key string, v int64) {
		if v < 0 {
			bad("%s must not be negative (got %d)", key, v)
		}
	}
	positive := func(key string, v int64) {
		if v <= 0 {
			bad("%s must be a positive integer (got %d)", key, v)
		}
	}
	nonNegative("[timeouts].renotification_seconds", c.Timeouts.RenotificationSeconds)
	nonNegative("[timeouts].renotification_check_interval_seconds", c.Timeouts.RenotificationCheckIntervalSeconds)

	nonNegative("[mediation].max_rounds", c.Mediation.MaxRounds)
	nonNegative("[mediation].party_response_timeout_seconds", c.Mediation.PartyResponseTimeoutSeconds)
	// [mediation].solver_auth_retry_* are clamped by Load, not refused.
	nonNegative("[reasoning].request_timeout_seconds", c.Reasoning.RequestTimeoutSeconds)
	nonNegative("[reasoning].followup_retry_count", c.Reasoning.FollowupRetryCount)
	nonNegative("[chat].inbound_fetch_interval_seconds", c.Chat.InboundFetchIntervalSeconds)
	positive("[escalation].claim_timeout_seconds", c.Escalation.ClaimTimeoutSeconds)

	positive("[database].max_conns", c.Database.MaxConns)

	positive("[mediationsvc].tick_seconds", c.Mediationsvc.TickSeconds)
	positive("[mediationsvc].session_lease_seconds", c.Mediationsvc.SessionLeaseSeconds)
	positive("[mediationsvc].take_timeout_seconds", c.Mediationsvc.TakeTimeoutSeconds)
	positive("[mediationsvc].start_retry_base_seconds", c.Mediationsvc.StartRetryBaseSeconds)
	positive("[mediationsvc].start_retry_max_seconds", c.Mediationsvc.StartRetryMaxSeconds)
	nonNegative("[intakesvc].retention_days", c.Intakesvc.RetentionDays)
	positive("[intakesvc].retention_interval_seconds", c.Intakesvc.RetentionIntervalSeconds)

	switch c.Server.LogFormat {
	case "json", "text":
	default:
		bad("[server].log_format must be json or text (got %q)", c.Server.LogFormat)
	}
	if strings.TrimSpace(c.Server.GRPCListen) == "" {
		bad("[server].grpc_listen is required")
	}
	nonNegative("[server].drain_seconds", c.Server.DrainSeconds)
	nonNegative("[server].shutdown_grace_seconds", c.Server.ShutdownGraceSeconds)

	positive("[relaygw].publish_timeout_seconds", c.Relaygw.PublishTimeoutSeconds)
	positive("[relaygw].reconnect_max_backoff_seconds", c.Relaygw.ReconnectMaxBackoffSeconds)
	nonNegative("[relaygw].resubscribe_margin_seconds", c.Relaygw.ResubscribeMarginSeconds)
	nonNegative("[relaygw].dispute_backfill_seconds", c.Relaygw.DisputeBackfillSeconds)
	nonNegative("[relaygw].retention_days", c.Relaygw.RetentionDays)
	if c.Relaygw.RetentionDays > 0 {
		positive("[relaygw].retention_interval_seconds", c.Relaygw.RetentionIntervalSeconds)
		if c.Relaygw.RetentionDays*24*3600 < c.Relaygw.GiftWrapLookbackSeconds {
			bad("[relaygw].retention_days (%d) must cover [relaygw].giftwrap_lookback_seconds (%d s)", c.Relaygw.RetentionDays, c.Relaygw.GiftWrapLookbackSeconds)
		}
	}
	if c.Relaygw.GiftWrapLookbackSeconds < 2*24*3600 {
		bad("[relaygw].giftwrap_lookback_seconds must be at least 172800 (gift wraps are back-dated up to two days; got %d)",
			c.Relaygw.GiftWrapLookbackSeconds)
	}
	return errors.Join(errs...)
}

// ValidateReasoningCredential applies the reference's credential rule: with
// [reasoning].enabled, api_key_env must name a variable and the credential
// must be set. Only the mediationsvc target (which calls the reasoning
// provider) needs it; Load checks it for that target alone.
func (c *Config) ValidateReasoningCredential() error {
	if !c.Reasoning.Enabled {
		return nil
	}
	name := strings.TrimSpace(c.Reasoning.APIKeyEnv)
	switch {
	case name == "":
		return errors.New("configuration error: [reasoning].api_key_env is empty but [reasoning].enabled = true")
	case !c.Reasoning.APIKey.IsSet():
		return fmt.Errorf("configuration error: reasoning provider enabled but credential env var `%s` is unset or empty", name)
	}
	return nil
}

// clampSolverAuthRetry makes the [mediation].solver_auth_retry_* values
// usable instead of refusing them: the reference accepts any of them (it
// never used them). Each change is returned as a warning that says what was
// clamped to what (docs/config.md#solver-auth-retry).
func (c *Config) clampSolverAuthRetry() []string {
	var warnings []string
	atLeast := func(key string, v *int64, floor int64, why string) {
		if *v >= floor {
			return
		}
		warnings = append(warnings, fmt.Sprintf("[mediation].%s = %d is unusable (%s); using %d", key, *v, why, floor))
		*v = floor
	}
	m := &c.Mediation
	atLeast("solver_auth_retry_initial_seconds", &m.SolverAuthRetryInitialSeconds, 1, "the first retry needs a delay of at least 1 s")
	atLeast("solver_auth_retry_max_interval_seconds", &m.SolverAuthRetryMaxIntervalSeconds, m.SolverAuthRetryInitialSeconds,
		"the longest delay cannot be shorter than solver_auth_retry_initial_seconds")
	atLeast("solver_auth_retry_max_total_seconds", &m.SolverAuthRetryMaxTotalSeconds, 1, "the retry budget must be at least 1 s")
	atLeast("solver_auth_retry_max_attempts", &m.SolverAuthRetryMaxAttempts, 1, "at least one attempt is always made")
	return warnings
}

// NormalizePubkey is nostrkey.CanonicalHex: 64 hex characters (any case)
// or an npub, to lowercase hex, checking the form only, as it always has.
// New code calls pkg/nostrkey (Normalize also checks the curve); this name
// stays until its callers move.
func NormalizePubkey(s string) (string, error) { return nostrkey.CanonicalHex(s) }

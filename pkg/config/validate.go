package config

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/btcsuite/btcd/btcutil/bech32"
)

// Validate checks every rule, normalises what it can (the Mostro pubkey to
// hex) and returns all problems at once, each naming its key. The reference
// checks come first and keep the reference's wording.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("configuration error: "+format, args...))
	}

	// Reference rules (spec 10 §A1.3); the reasoning credential rule is
	// ValidateReasoningCredential, checked by Load for mediationsvc only.
	if c.Escalation.DispatchIntervalSeconds <= 0 {
		bad("[escalation].dispatch_interval_seconds must be a positive integer (got %d)", c.Escalation.DispatchIntervalSeconds)
	}

	// Identity of the Mostro node.
	if strings.TrimSpace(c.Mostro.Pubkey) == "" {
		bad("[mostro].pubkey is required")
	} else if pk, err := NormalizePubkey(c.Mostro.Pubkey); err != nil {
		bad("[mostro].pubkey: invalid mostro pubkey: %v", err)
	} else {
		c.Mostro.Pubkey = pk
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
	positive("[mediation].solver_auth_retry_initial_seconds", c.Mediation.SolverAuthRetryInitialSeconds)
	positive("[mediation].solver_auth_retry_max_interval_seconds", c.Mediation.SolverAuthRetryMaxIntervalSeconds)
	positive("[mediation].solver_auth_retry_max_total_seconds", c.Mediation.SolverAuthRetryMaxTotalSeconds)
	positive("[mediation].solver_auth_retry_max_attempts", c.Mediation.SolverAuthRetryMaxAttempts)
	if c.Mediation.SolverAuthRetryMaxIntervalSeconds < c.Mediation.SolverAuthRetryInitialSeconds {
		bad("[mediation].solver_auth_retry_max_interval_seconds (%d) must be at least solver_auth_retry_initial_seconds (%d)",
			c.Mediation.SolverAuthRetryMaxIntervalSeconds, c.Mediation.SolverAuthRetryInitialSeconds)
	}
	nonNegative("[reasoning].request_timeout_seconds", c.Reasoning.RequestTimeoutSeconds)
	nonNegative("[reasoning].followup_retry_count", c.Reasoning.FollowupRetryCount)
	nonNegative("[chat].inbound_fetch_interval_seconds", c.Chat.InboundFetchIntervalSeconds)
	positive("[escalation].claim_timeout_seconds", c.Escalation.ClaimTimeoutSeconds)

	positive("[database].max_conns", c.Database.MaxConns)

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

// NormalizePubkey accepts a 64-character hex key (any case) or an npub and
// returns lowercase hex. It checks the form only, not that the key is a
// valid curve point.
func NormalizePubkey(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "npub1") {
		hrp, data, err := bech32.Decode(s)
		if err != nil {
			return "", fmt.Errorf("bad npub: %w", err)
		}
		if hrp != "npub" {
			return "", fmt.Errorf("bad npub: prefix %q", hrp)
		}
		raw, err := bech32.ConvertBits(data, 5, 8, false)
		if err != nil || len(raw) != 32 {
			return "", errors.New("bad npub: not 32 bytes")
		}
		return hex.EncodeToString(raw), nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("want 64 hex characters or an npub, got %d characters", len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", errors.New("not hex")
	}
	return strings.ToLower(s), nil
}

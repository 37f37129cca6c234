package authsvc

import (
	"errors"
	"time"
)

// Config is authsvc's configuration. internal/runner/authsvc.go maps it
// from config.toml's [mediation].solver_auth_retry_* keys; the zero value
// of a field means its default. See docs/authorization.md#the-numbers.
type Config struct {
	// RetryInitial is the wait after the first failed attempt
	// (solver_auth_retry_initial_seconds, 60 s).
	RetryInitial time.Duration
	// RetryMaxInterval caps the doubling wait
	// (solver_auth_retry_max_interval_seconds, 3600 s).
	RetryMaxInterval time.Duration
	// RetryMaxTotal ends a cycle once its summed waits reach it
	// (solver_auth_retry_max_total_seconds, 86400 s).
	RetryMaxTotal time.Duration
	// RetryMaxAttempts ends a cycle once this many attempts ran
	// (solver_auth_retry_max_attempts, 24); attempt 2 always runs.
	RetryMaxAttempts int
	// StartRecheckAfter is the age past which a persisted Authorized answer
	// is checked again when a replica starts (1 h; no config key).
	StartRecheckAfter time.Duration
}

// The defaults (the reference's numbers, and the start re-check age).
const (
	DefaultRetryInitial      = 60 * time.Second
	DefaultRetryMaxInterval  = 3600 * time.Second
	DefaultRetryMaxTotal     = 86400 * time.Second
	DefaultRetryMaxAttempts  = 24
	DefaultStartRecheckAfter = time.Hour
)

// DefaultConfig is the configuration with every default.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMaxInterval, DefaultRetryMaxInterval)
	def(&c.RetryMaxTotal, DefaultRetryMaxTotal)
	def(&c.StartRecheckAfter, DefaultStartRecheckAfter)
	if c.RetryMaxAttempts == 0 {
		c.RetryMaxAttempts = DefaultRetryMaxAttempts
	}
	return c
}

// Validate checks the configuration (after defaults: zero fields are
// fine).
func (c Config) Validate() error {
	c = c.WithDefaults()
	switch {
	case c.RetryInitial < 0, c.RetryMaxInterval < 0, c.RetryMaxTotal < 0, c.StartRecheckAfter < 0:
		return errors.New("authsvc: durations must not be negative")
	case c.RetryMaxInterval < c.RetryInitial:
		return errors.New("authsvc: the retry max interval must be at least the initial interval")
	case c.RetryMaxAttempts < 0:
		return errors.New("authsvc: max attempts must not be negative")
	}
	return nil
}

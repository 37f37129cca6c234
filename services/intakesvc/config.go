package intakesvc

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/serbero/serbero/pkg/nostrkey"
)

// Config is intakesvc's configuration. internal/runner maps it from the
// configuration file ([mostro], [[solvers]], [timeouts], [intakesvc]); see
// docs/intake.md#configuration.
type Config struct {
	// MostroPubkey is the Mostro node's pubkey (64 hex characters in any
	// case, or an npub, of a point on secp256k1): the only author whose
	// dispute events are accepted. Validate normalises it to lowercase hex.
	MostroPubkey string
	// Solvers are the configured solver pubkeys, verbatim, in config
	// order. An invalid one is not a configuration error: its DMs fail and
	// are recorded, as in the reference.
	Solvers []string
	// RenotifyAfter is [timeouts].renotification_seconds: a notified
	// dispute nobody took is announced again once this long passed.
	RenotifyAfter time.Duration
	// RenotifyEvery is [timeouts].renotification_check_interval_seconds
	// (less than 1 s counts as 1 s, as the reference's 0 does).
	RenotifyEvery time.Duration
	// Retention is [intakesvc].retention_days: change-feed, outbox and
	// quarantine rows are kept at least this long; 0 keeps everything.
	Retention time.Duration
	// RetentionInterval is [intakesvc].retention_interval_seconds, the
	// pause between two retention runs.
	RetentionInterval time.Duration
	// Tuning holds knobs outside the configuration file.
	Tuning Tuning
}

// Tuning holds knobs outside the configuration file, for tests and
// benchmarks. Zero fields keep the defaults.
type Tuning struct {
	// Workers is the number of concurrent DM senders (default 32).
	Workers int
	// PollInterval is the outbox scan period (default 1 s).
	PollInterval time.Duration
	// SendTimeout bounds one SendDirectMessage call (default 30 s); a
	// claimed DM's lease is twice as long.
	SendTimeout time.Duration
	// GaugeInterval is the per-state gauge refresh period (default 10 s).
	GaugeInterval time.Duration
	// SendAttempts is how many times one DM is tried before it counts as
	// failed (default 5).
	SendAttempts int
	// RetryBase is the delay before a DM's first retry, doubled after
	// each (default 1 s).
	RetryBase time.Duration
	// IntakeWorkers is how many disputes are persisted concurrently
	// (default 4).
	IntakeWorkers int
}

// DefaultConfig returns the reference's defaults (renotification after
// 300 s, checked every 60 s) and the default retention (90 days, hourly).
// MostroPubkey and Solvers are left empty.
func DefaultConfig() Config {
	return Config{
		RenotifyAfter:     300 * time.Second,
		RenotifyEvery:     60 * time.Second,
		Retention:         90 * 24 * time.Hour,
		RetentionInterval: time.Hour,
	}
}

// Validate checks the configuration and normalises MostroPubkey to
// lowercase hex. It returns every problem at once.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.MostroPubkey) == "" {
		errs = append(errs, errors.New("intakesvc: the Mostro pubkey is required"))
	} else if pk, err := nostrkey.Normalize(c.MostroPubkey); err != nil {
		errs = append(errs, fmt.Errorf("intakesvc: Mostro pubkey: %w", err))
	} else {
		c.MostroPubkey = pk
	}
	for i, s := range c.Solvers {
		if s == "" {
			errs = append(errs, fmt.Errorf("intakesvc: solver %d has no pubkey", i))
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"renotification delay", c.RenotifyAfter}, {"renotification check interval", c.RenotifyEvery},
		{"retention", c.Retention}, {"retention interval", c.RetentionInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("intakesvc: %s must not be negative (got %s)", d.name, d.v))
		}
	}
	if c.Retention > 0 && c.RetentionInterval <= 0 {
		errs = append(errs, errors.New("intakesvc: the retention interval must be positive when retention is on"))
	}
	return errors.Join(errs...)
}

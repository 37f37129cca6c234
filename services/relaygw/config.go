package relaygw

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/nostrkey"
)

// Config is what relaygw reads from the configuration file. The runner
// maps the shared file onto it (internal/runner/relaygw.go); tests build it
// directly from DefaultConfig. Durations are whole seconds in the file.
type Config struct {
	// MostroPubkey is the Mostro node's public key ([mostro].pubkey): 64
	// hex characters in any case or an npub, of a point on secp256k1. New
	// uses its normalised form (nostrkey.Normalize: lowercase hex).
	MostroPubkey string
	// Relays are the relay URLs ([[relays]].url), in order. None is a
	// warning, not an error: relaygw runs and every send is undelivered.
	Relays []string
	// DevRelayListen is where the embedded relay listens when Deps.Dev is
	// set and Relays is empty ([relaygw].dev_relay_listen).
	DevRelayListen string
	// GiftWrapLookback is how far back gift-wrap subscriptions reach
	// ([relaygw].giftwrap_lookback_seconds); at least two days, since
	// wraps are back-dated up to that.
	GiftWrapLookback time.Duration
	// PublishTimeout bounds the wait for each relay's OK
	// ([relaygw].publish_timeout_seconds).
	PublishTimeout time.Duration
	// ReconnectMaxBackoff caps the reconnect backoff
	// ([relaygw].reconnect_max_backoff_seconds).
	ReconnectMaxBackoff time.Duration
	// ResubscribeMargin is subtracted from a durable cursor when
	// subscribing again ([relaygw].resubscribe_margin_seconds).
	ResubscribeMargin time.Duration
	// DisputeBackfill is how far before its first start relaygw reads the
	// node's dispute events ([relaygw].dispute_backfill_seconds; 0: from
	// the start, minus ResubscribeMargin). See docs/relaygw.md#first-start.
	DisputeBackfill time.Duration
	// SendLegacyChat also sends each chat line in the legacy v1 form
	// ([chat].send_legacy_form).
	SendLegacyChat bool
	// Retention is the retention job of relaygw's tables.
	Retention RetentionConfig
}

// RetentionConfig tunes the retention job (see docs/relaygw.md#retention).
type RetentionConfig struct {
	// Keep is how long rows are kept at least ([relaygw].retention_days);
	// 0 keeps everything and disables the job.
	Keep time.Duration
	// Interval is the pause between two runs
	// ([relaygw].retention_interval_seconds).
	Interval time.Duration
	// BatchSize is how many rows one delete statement removes at most (not
	// in the file; default 1000).
	BatchSize int
}

// Defaults of the retention job.
const (
	DefaultRetentionKeep     = 90 * 24 * time.Hour
	DefaultRetentionInterval = time.Hour
	DefaultRetentionBatch    = 1000
)

// DefaultConfig is the configuration with the file's defaults and no
// Mostro node or relays.
func DefaultConfig() Config {
	return Config{
		DevRelayListen:      "127.0.0.1:7447",
		GiftWrapLookback:    7 * 24 * time.Hour,
		PublishTimeout:      10 * time.Second,
		ReconnectMaxBackoff: 60 * time.Second,
		ResubscribeMargin:   60 * time.Second,
		Retention: RetentionConfig{
			Keep:      DefaultRetentionKeep,
			Interval:  DefaultRetentionInterval,
			BatchSize: DefaultRetentionBatch,
		},
	}
}

// Validate reports every problem of c at once, each naming its key.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(c.MostroPubkey) == "" {
		bad("[mostro].pubkey is required")
	} else if _, err := nostrkey.Normalize(c.MostroPubkey); err != nil {
		bad("[mostro].pubkey %q: %w", c.MostroPubkey, err)
	}
	for i, r := range c.Relays {
		u, err := url.Parse(strings.TrimSpace(r))
		if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
			bad("relays[%d].url %q must be a ws:// or wss:// URL with a host", i, r)
		}
	}
	if c.GiftWrapLookback < giftwrap.MaxTweak {
		bad("[relaygw].giftwrap_lookback_seconds must be at least %d (gift wraps are back-dated up to two days; got %d)",
			int64(giftwrap.MaxTweak/time.Second), int64(c.GiftWrapLookback/time.Second))
	}
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			bad("%s must be positive (got %s)", key, d)
		}
	}
	positive("[relaygw].publish_timeout_seconds", c.PublishTimeout)
	positive("[relaygw].reconnect_max_backoff_seconds", c.ReconnectMaxBackoff)
	if c.ResubscribeMargin < 0 {
		bad("[relaygw].resubscribe_margin_seconds must not be negative (got %s)", c.ResubscribeMargin)
	}
	if c.DisputeBackfill < 0 {
		bad("[relaygw].dispute_backfill_seconds must not be negative (got %s)", c.DisputeBackfill)
	}
	if c.Retention.Keep < 0 {
		bad("[relaygw].retention_days must not be negative (got %s)", c.Retention.Keep)
	}
	if c.Retention.Keep > 0 {
		positive("[relaygw].retention_interval_seconds", c.Retention.Interval)
		if c.Retention.BatchSize <= 0 {
			bad("retention batch size must be positive (got %d)", c.Retention.BatchSize)
		}
		if c.Retention.Keep < c.GiftWrapLookback {
			bad("[relaygw].retention_days (%s) must cover [relaygw].giftwrap_lookback_seconds (%s): chat dedup needs the lines a relay may deliver again",
				c.Retention.Keep, c.GiftWrapLookback)
		}
	}
	return errors.Join(errs...)
}

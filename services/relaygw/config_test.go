package relaygw_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/relaygw"
)

// nip19Npub is NIP-19's example npub (a point on the curve).
const nip19Npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	valid := func() relaygw.Config {
		c := relaygw.DefaultConfig()
		c.MostroPubkey = keys.Generate().PublicKey()
		c.Relays = []string{"wss://relay.example", "ws://127.0.0.1:7447"}
		return c
	}
	require.NoError(t, valid().Validate())
	tests := []struct {
		name   string
		mutate func(*relaygw.Config)
		want   string
	}{
		{"NoMostro", func(c *relaygw.Config) { c.MostroPubkey = "" }, "[mostro].pubkey is required"},
		{"ShortMostro", func(c *relaygw.Config) { c.MostroPubkey = c.MostroPubkey[2:] }, "[mostro].pubkey"},
		{"OffCurveMostro", func(c *relaygw.Config) { c.MostroPubkey = strings.Repeat("f", 64) }, "not a point on secp256k1"},
		{"NegativeDisputeBackfill", func(c *relaygw.Config) { c.DisputeBackfill = -time.Second }, "[relaygw].dispute_backfill_seconds must not be negative"},
		{"HTTPRelay", func(c *relaygw.Config) { c.Relays = []string{"https://relay.example"} }, "relays[0].url"},
		{"ShortLookback", func(c *relaygw.Config) { c.GiftWrapLookback = time.Hour }, "giftwrap_lookback_seconds must be at least 172800"},
		{"ZeroPublishTimeout", func(c *relaygw.Config) { c.PublishTimeout = 0 }, "publish_timeout_seconds must be positive"},
		{"NegativeMargin", func(c *relaygw.Config) { c.ResubscribeMargin = -time.Second }, "resubscribe_margin_seconds must not be negative"},
		{"NegativeRetention", func(c *relaygw.Config) { c.Retention.Keep = -time.Hour }, "retention_days must not be negative"},
		{"RetentionBelowLookback", func(c *relaygw.Config) { c.Retention.Keep = 24 * time.Hour }, "must cover [relaygw].giftwrap_lookback_seconds"},
		{"RetentionWithoutInterval", func(c *relaygw.Config) { c.Retention.Interval = 0 }, "retention_interval_seconds must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := valid()
			tt.mutate(&c)
			require.ErrorContains(t, c.Validate(), tt.want)
		})
	}
	t.Run("RetentionOffNeedsNoInterval", func(t *testing.T) {
		t.Parallel()
		c := valid()
		c.Retention = relaygw.RetentionConfig{}
		require.NoError(t, c.Validate())
	})
	t.Run("MostroPubkeyAsWritten", func(t *testing.T) {
		t.Parallel()
		for _, pk := range []string{strings.ToUpper(valid().MostroPubkey), " " + valid().MostroPubkey + "\n", nip19Npub} {
			c := valid()
			c.MostroPubkey = pk
			require.NoError(t, c.Validate(), "%q: any case, white space, npub (New normalises)", pk)
		}
	})
	t.Run("NoRelaysIsValid", func(t *testing.T) {
		t.Parallel()
		c := valid()
		c.Relays = nil
		require.NoError(t, c.Validate(), "no relays is a warning at start, as the reference daemon")
	})
}

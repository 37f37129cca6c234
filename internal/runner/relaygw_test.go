package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/relaygw"
)

func TestRelaygwConfigMapsTheFile(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Mostro.Pubkey = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	c.Relays = []config.RelayConfig{{URL: "wss://a.example"}, {URL: "wss://b.example"}}
	c.Relaygw.PublishTimeoutSeconds = 7
	c.Relaygw.ReconnectMaxBackoffSeconds = 30
	c.Relaygw.ResubscribeMarginSeconds = 5
	c.Relaygw.DisputeBackfillSeconds = 86400
	c.Relaygw.GiftWrapLookbackSeconds = 3 * 24 * 3600
	c.Relaygw.DevRelayListen = "127.0.0.1:9999"
	c.Relaygw.RetentionDays = 30
	c.Relaygw.RetentionIntervalSeconds = 600
	c.Chat.SendLegacyForm = true

	got := relaygwConfig(&c)
	want := relaygw.DefaultConfig()
	want.MostroPubkey = c.Mostro.Pubkey
	want.Relays = []string{"wss://a.example", "wss://b.example"}
	want.PublishTimeout = 7 * time.Second
	want.ReconnectMaxBackoff = 30 * time.Second
	want.ResubscribeMargin = 5 * time.Second
	want.DisputeBackfill = 24 * time.Hour
	want.GiftWrapLookback = 3 * 24 * time.Hour
	want.DevRelayListen = "127.0.0.1:9999"
	want.Retention.Keep = 30 * 24 * time.Hour
	want.Retention.Interval = 10 * time.Minute
	want.SendLegacyChat = true
	require.Equal(t, want, got)
	require.NoError(t, got.Validate())

	t.Run("DefaultsAgree", func(t *testing.T) {
		t.Parallel()
		d := config.Default()
		got := relaygwConfig(&d)
		want := relaygw.DefaultConfig()
		want.Relays = []string{}
		require.Equal(t, want, got, "the file's defaults and relaygw's own are the same")
	})
}

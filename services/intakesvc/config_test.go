package intakesvc_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	const hexPK = "79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798"
	valid := func() intakesvc.Config {
		c := intakesvc.DefaultConfig()
		c.MostroPubkey = hexPK
		c.Solvers = []string{"anything-verbatim"}
		return c
	}
	cases := []struct {
		name  string
		edit  func(*intakesvc.Config)
		want  string // "" for valid
		wantK string // the normalised key when valid
	}{
		{"defaults", func(*intakesvc.Config) {}, "", strings.ToLower(hexPK)},
		{"npub", func(c *intakesvc.Config) {
			c.MostroPubkey = "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d"
		}, "", strings.ToLower(hexPK)},
		{"hex off the curve", func(c *intakesvc.Config) { c.MostroPubkey = strings.Repeat("03", 32) }, "not a point on secp256k1", ""},
		{"no pubkey", func(c *intakesvc.Config) { c.MostroPubkey = "" }, "the Mostro pubkey is required", ""},
		{"short pubkey", func(c *intakesvc.Config) { c.MostroPubkey = "abc" }, "want 64 hex characters or an npub", ""},
		{"bad npub", func(c *intakesvc.Config) { c.MostroPubkey = "npub1xyz" }, "Mostro pubkey", ""},
		{"empty solver", func(c *intakesvc.Config) { c.Solvers = []string{"a", ""} }, "solver 1 has no pubkey", ""},
		{"negative delay", func(c *intakesvc.Config) { c.RenotifyAfter = -time.Second }, "renotification delay must not be negative", ""},
		{"negative retention", func(c *intakesvc.Config) { c.Retention = -time.Hour }, "retention must not be negative", ""},
		{"retention without interval", func(c *intakesvc.Config) { c.RetentionInterval = 0 }, "retention interval must be positive", ""},
		{"retention off needs no interval", func(c *intakesvc.Config) { c.Retention, c.RetentionInterval = 0, 0 }, "", strings.ToLower(hexPK)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.edit(&c)
			err := c.Validate()
			if tc.want != "" {
				require.ErrorContains(t, err, tc.want)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantK, c.MostroPubkey)
		})
	}
}

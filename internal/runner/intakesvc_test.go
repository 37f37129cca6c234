package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/intakesvc"
)

func TestIntakesvcConfigMapsTheFile(t *testing.T) {
	t.Parallel()
	c := config.Default()
	c.Mostro.Pubkey = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	c.Solvers = []config.SolverConfig{{Pubkey: "npub-or-hex-verbatim", Permission: config.PermissionRead}, {Pubkey: "b", Permission: config.PermissionWrite}}
	c.Timeouts = config.TimeoutsConfig{RenotificationSeconds: 120, RenotificationCheckIntervalSeconds: 0}
	c.Intakesvc = config.IntakesvcConfig{RetentionDays: 7, RetentionIntervalSeconds: 600}
	got := intakesvcConfig(&c)
	require.Equal(t, intakesvc.Config{
		MostroPubkey:      c.Mostro.Pubkey,
		Solvers:           []string{"npub-or-hex-verbatim", "b"},
		RenotifyAfter:     120 * time.Second,
		RenotifyEvery:     time.Second, // 0 means 1, as in the reference
		Retention:         7 * 24 * time.Hour,
		RetentionInterval: 10 * time.Minute,
	}, got)
	require.NoError(t, got.Validate())

	// The defaults of the file are intakesvc's defaults.
	d := config.Default()
	d.Mostro.Pubkey = c.Mostro.Pubkey
	def := intakesvc.DefaultConfig()
	def.MostroPubkey, def.Solvers = c.Mostro.Pubkey, []string{}
	require.Equal(t, def, intakesvcConfig(&d))
}

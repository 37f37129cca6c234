package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/escalationsvc"
)

// The [escalation] keys and [[solvers]] reach escalationsvc's Config, in
// the units it uses, solvers in configuration order.
func TestEscalationsvcConfigMapsTheReferenceKeys(t *testing.T) {
	t.Parallel()
	loaded := load(t, config.TargetEscalationsvc, `
[escalation]
enabled = true
dispatch_interval_seconds = 7
claim_timeout_seconds = 90
fallback_to_all_solvers = true

[[solvers]]
pubkey = "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5"
permission = "read"

[[solvers]]
pubkey = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
permission = "write"
`)
	got := escalationsvcConfig(loaded.Config)
	require.Equal(t, escalationsvc.Config{
		Enabled: true, DispatchInterval: 7 * time.Second, ClaimTimeout: 90 * time.Second, FallbackToAllSolvers: true,
		Solvers: []config.SolverConfig{
			{Pubkey: "c6047f9441ed7d6d3045406e95c07cd85c778e4b8cef3ca7abac09b95c709ee5", Permission: config.PermissionRead},
			{Pubkey: "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", Permission: config.PermissionWrite},
		},
	}, got)
	require.NoError(t, got.Validate())

	def := escalationsvcConfig(load(t, config.TargetEscalationsvc, "").Config)
	require.Equal(t, escalationsvc.Config{DispatchInterval: 30 * time.Second, ClaimTimeout: time.Minute}, def, "the defaults")
}

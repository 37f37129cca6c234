package runner

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/services/authsvc"
)

func TestAuthsvcConfig(t *testing.T) {
	t.Parallel()
	def := config.Default()
	require.Equal(t, authsvc.DefaultConfig(), authsvcConfig(&def).WithDefaults(),
		"the reference's defaults are authsvc's defaults")

	c := config.Default()
	c.Mediation.SolverAuthRetryInitialSeconds = 30
	c.Mediation.SolverAuthRetryMaxIntervalSeconds = 900
	c.Mediation.SolverAuthRetryMaxTotalSeconds = 7200
	c.Mediation.SolverAuthRetryMaxAttempts = 1
	got := authsvcConfig(&c)
	require.Equal(t, authsvc.Config{
		RetryInitial: 30 * time.Second, RetryMaxInterval: 900 * time.Second, RetryMaxTotal: 7200 * time.Second, RetryMaxAttempts: 1,
	}, got)
	require.NoError(t, got.Validate())
}

package escalationsvc

import (
	"errors"
	"fmt"
	"time"

	"github.com/serbero/serbero/pkg/config"
)

// Config is escalationsvc's configuration: the [escalation] section and the
// [[solvers]] list of config.toml, mapped in internal/runner/escalationsvc.go
// (see docs/escalation.md#configuration).
type Config struct {
	// Enabled is [escalation].enabled: false runs no dispatcher at all (the
	// admin API still answers).
	Enabled bool
	// DispatchInterval is [escalation].dispatch_interval_seconds: the poll
	// that backs up LISTEN/NOTIFY (jittered ±20 %), and the base of the park
	// backoff.
	DispatchInterval time.Duration
	// ClaimTimeout is [escalation].claim_timeout_seconds: how long a claim
	// lasts without a heartbeat before another replica may take the handoff.
	ClaimTimeout time.Duration
	// FallbackToAllSolvers is [escalation].fallback_to_all_solvers: with no
	// write solver, send to every configured solver.
	FallbackToAllSolvers bool
	// Solvers are the [[solvers]], in configuration order (routing keeps it).
	Solvers []config.SolverConfig
}

// Validate checks what escalationsvc relies on. The loader checks the file
// already; this guards a Config built elsewhere (tests, other runners).
func (c Config) Validate() error {
	var errs []error
	if c.DispatchInterval <= 0 {
		errs = append(errs, fmt.Errorf("escalationsvc: dispatch interval must be positive (got %s)", c.DispatchInterval))
	}
	if c.ClaimTimeout <= 0 {
		errs = append(errs, fmt.Errorf("escalationsvc: claim timeout must be positive (got %s)", c.ClaimTimeout))
	}
	for i, s := range c.Solvers {
		if s.Permission != config.PermissionRead && s.Permission != config.PermissionWrite {
			errs = append(errs, fmt.Errorf("escalationsvc: solver %d: permission must be read or write (got %q)", i+1, s.Permission))
		}
	}
	return errors.Join(errs...)
}

// writeSolvers counts the solvers with write permission.
func (c Config) writeSolvers() int {
	n := 0
	for _, s := range c.Solvers {
		if s.CanWrite() {
			n++
		}
	}
	return n
}

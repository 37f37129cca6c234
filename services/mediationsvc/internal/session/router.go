package session

import "slices"

// Route is who a solver-facing DM goes to.
type Route struct {
	// Recipients are the solver pubkeys to send to (never nil; empty when
	// no solver is configured, which the caller must handle).
	Recipients []string
	// Targeted is true when the DM goes to the dispute's assigned solver
	// alone.
	Targeted bool
	// FellBack is true when the dispute has an assigned solver that is not
	// a configured solver, so the DM is broadcast instead (worth a
	// warning: after Serbero's own take the assigned solver is usually
	// Serbero itself).
	FellBack bool
}

// Recipients routes a solver-facing DM: to assigned alone when it is set
// and is one of the configured solvers (exact match), else to every
// configured solver. configured is copied, never aliased.
func Recipients(configured []string, assigned string) Route {
	if assigned != "" && slices.Contains(configured, assigned) {
		return Route{Recipients: []string{assigned}, Targeted: true}
	}
	all := make([]string, len(configured))
	copy(all, configured)
	return Route{Recipients: all, FellBack: assigned != ""}
}

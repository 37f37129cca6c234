// Package route decides who receives a handoff and builds the
// escalation_handoff/v1 DM body (docs/escalation.md#routing and
// #the-dm-body). Pure functions, no I/O.
package route

import (
	"strings"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/nostrkey"
)

// Kind is the routing rule that fired.
type Kind int

// The routing outcomes.
const (
	// Unroutable: no write solver, and no fallback broadcast (rule 4).
	Unroutable Kind = iota
	// Targeted: only the assigned write solver (rule 1).
	Targeted
	// Broadcast: every write solver (rule 2), or every solver when the
	// fallback fired (rule 3).
	Broadcast
)

// Decision is who gets the DM.
type Decision struct {
	Kind Kind
	// Recipients are solver pubkeys exactly as configured, in config order.
	Recipients []string
	// FallbackBroadcast is true when rule 3 fired.
	FallbackBroadcast bool
}

// Route applies the rule table, in order:
//  1. assigned is a configured solver with write permission: that solver;
//  2. else every write solver, in config order;
//  3. else, with fallback on and at least one solver: every solver;
//  4. else Unroutable.
//
// An assigned solver with read permission, or not configured, falls to
// rule 2. Pubkeys are compared as written and, when both are valid keys,
// normalised, so an assignment recorded in hex matches a solver configured
// as an npub (a deliberate difference, docs/escalation.md#routing).
func Route(assigned *string, solvers []config.SolverConfig, fallback bool) Decision {
	if assigned != nil {
		for _, s := range solvers {
			if s.CanWrite() && samePubkey(s.Pubkey, *assigned) {
				return Decision{Kind: Targeted, Recipients: []string{s.Pubkey}}
			}
		}
	}
	var writers []string
	for _, s := range solvers {
		if s.CanWrite() {
			writers = append(writers, s.Pubkey)
		}
	}
	if len(writers) > 0 {
		return Decision{Kind: Broadcast, Recipients: writers}
	}
	if fallback && len(solvers) > 0 {
		all := make([]string, 0, len(solvers))
		for _, s := range solvers {
			all = append(all, s.Pubkey)
		}
		return Decision{Kind: Broadcast, Recipients: all, FallbackBroadcast: true}
	}
	return Decision{Kind: Unroutable}
}

func samePubkey(a, b string) bool {
	if a == b {
		return true
	}
	na, errA := nostrkey.Normalize(a)
	nb, errB := nostrkey.Normalize(b)
	return errA == nil && errB == nil && na == nb
}

// NoSessionLine is line 3 of the body of a dispute-scoped handoff (U+2014
// EM DASH).
const NoSessionLine = "Session: <none — dispute-scoped handoff>"

// Body returns the escalation_handoff/v1 DM body, byte for byte as the
// reference: LF line ends, single blank lines between sections, no trailing
// newline, the human summary on one line, and the package re-serialised
// (compact, fixed key order, session_id omitted when there is none). A
// package that carried an empty session_id keeps it: line 3 is "Session: "
// and the JSON has "session_id":"". It carries rationale ids only, never
// rationale text.
func Body(p handoff.Package) string {
	session := NoSessionLine
	if p.HasSessionKey() {
		session = "Session: " + p.SessionID
	}
	var b strings.Builder
	b.Grow(700)
	b.WriteString("escalation_handoff/v1\n")
	b.WriteString("Dispute: " + p.DisputeID + "\n")
	b.WriteString(session + "\n")
	b.WriteString("Trigger: " + p.Trigger + "\n")
	b.WriteString("\n")
	b.WriteString("Escalation required for dispute " + p.DisputeID + ". Trigger: " + p.Trigger +
		". This dispute was evaluated by Serbero's mediation assistance system and requires human judgment. " +
		"Please run TakeDispute for dispute " + p.DisputeID + " on your Mostro instance to review the full context.\n")
	b.WriteString("\n")
	b.WriteString("Handoff payload (JSON):\n")
	b.Write(p.Encode())
	return b.String()
}

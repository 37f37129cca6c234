package systest_test

import (
	"strconv"
	"strings"

	"github.com/serbero/serbero/pkg/testkit/fakesolver"
)

// The DM bodies, byte for byte as docs/intake.md and docs/escalation.md
// give them (and as services/intakesvc's tests expect them).

func initialBody(d, initiator string, at int64) string {
	return "New Mostro dispute requires attention.\ndispute_id: " + d + "\ninitiator: " + initiator +
		"\nevent_timestamp: " + strconv.FormatInt(at, 10) + "\nstatus: initiated"
}

func assignmentBody(d, solver string) string {
	return "Mostro dispute has been taken.\ndispute_id: " + d + "\nassigned_solver: " + solver + "\nlifecycle_state: taken"
}

func renotificationBody(d string, elapsed int64) string {
	return "Mostro dispute is still unattended.\ndispute_id: " + d + "\nlifecycle_state: notified\ntime_elapsed_seconds: " +
		strconv.FormatInt(elapsed, 10)
}

// escalationBody is the escalation_handoff/v1 DM of a dispute-scoped
// handoff whose package JSON is payload.
func escalationBody(d, trigger, payload string) string {
	return "escalation_handoff/v1\nDispute: " + d + "\nSession: <none — dispute-scoped handoff>\nTrigger: " + trigger +
		"\n\nEscalation required for dispute " + d + ". Trigger: " + trigger +
		". This dispute was evaluated by Serbero's mediation assistance system and requires human judgment. " +
		"Please run TakeDispute for dispute " + d + " on your Mostro instance to review the full context.\n\n" +
		"Handoff payload (JSON):\n" + payload
}

// DM kinds, by a body's first line.
const (
	kindInitial    = "initial"
	kindAssignment = "assignment"
	kindRenotify   = "re-notification"
	kindEscalation = "escalation"
	kindOther      = "other"
)

// dmKey is one kind of DM about one dispute.
type dmKey struct{ kind, dispute string }

// classify returns a DM's kind and dispute id.
func classify(body string) dmKey {
	first, rest, _ := strings.Cut(body, "\n")
	kind := kindOther
	switch first {
	case "New Mostro dispute requires attention.":
		kind = kindInitial
	case "Mostro dispute has been taken.":
		kind = kindAssignment
	case "Mostro dispute is still unattended.":
		kind = kindRenotify
	case "escalation_handoff/v1":
		kind = kindEscalation
	}
	for line := range strings.SplitSeq(rest, "\n") {
		if v, ok := strings.CutPrefix(line, "dispute_id: "); ok {
			return dmKey{kind, v}
		}
		if v, ok := strings.CutPrefix(line, "Dispute: "); ok {
			return dmKey{kind, v}
		}
	}
	return dmKey{kind, ""}
}

// tally counts a solver's DMs (distinct gift wraps, as a NIP-17 client
// shows them) per kind and dispute.
func tally(s *fakesolver.Solver) map[dmKey]int {
	out := map[dmKey]int{}
	for _, m := range s.Messages() {
		out[classify(m.Body)]++
	}
	return out
}

package session

import (
	"errors"
	"fmt"
	"slices"
)

// State is the state of a mediation session, stored as its string value in
// mediation_sessions.state.
type State string

// The nine session states (string values exact; they are stored).
const (
	Opening               State = "opening"
	AwaitingResponse      State = "awaiting_response"
	Classified            State = "classified"
	FollowUpPending       State = "follow_up_pending"
	SummaryPending        State = "summary_pending"
	SummaryDelivered      State = "summary_delivered"
	EscalationRecommended State = "escalation_recommended"
	SupersededByHuman     State = "superseded_by_human"
	Closed                State = "closed"
)

// ErrUnknownState is what ParseState returns (wrapped) for a string that is
// not one of the nine states.
var ErrUnknownState = errors.New("unknown session state")

// States returns the nine states in their documented order (a fresh slice).
func States() []State {
	return []State{
		Opening, AwaitingResponse, Classified, FollowUpPending, SummaryPending,
		SummaryDelivered, EscalationRecommended, SupersededByHuman, Closed,
	}
}

// ParseState returns the state spelled exactly s (no trimming, no case
// folding), or an error wrapping ErrUnknownState.
func ParseState(s string) (State, error) {
	for _, st := range States() {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("parse session state %q: %w", s, ErrUnknownState)
}

// Live reports whether a session in s is still being mediated: it is polled
// for replies, swept for party timeouts and blocks a new session for its
// dispute. Live is every state except closed, summary_delivered,
// escalation_recommended and superseded_by_human; a value that is not a
// state is not live.
func (s State) Live() bool {
	switch s {
	case Opening, AwaitingResponse, Classified, FollowUpPending, SummaryPending:
		return true
	case SummaryDelivered, EscalationRecommended, SupersededByHuman, Closed:
		return false
	}
	return false
}

// Escalatable reports whether a session in s may move to
// escalation_recommended (and, the same set, to superseded_by_human). The
// set is the same as Live's.
func (s State) Escalatable() bool { return s.Live() }

// Terminal reports whether s is the one terminal state, closed.
func (s State) Terminal() bool { return s == Closed }

// Targets returns the states s may move to, in States order (a fresh,
// non-nil slice; empty for closed and for a value that is not a state).
func Targets(from State) []State {
	switch from {
	case Opening:
		return []State{AwaitingResponse, EscalationRecommended, SupersededByHuman}
	case AwaitingResponse:
		return []State{Classified, EscalationRecommended, SupersededByHuman}
	case Classified:
		return []State{FollowUpPending, SummaryPending, EscalationRecommended, SupersededByHuman}
	case FollowUpPending:
		return []State{AwaitingResponse, EscalationRecommended, SupersededByHuman}
	case SummaryPending:
		return []State{SummaryDelivered, EscalationRecommended, SupersededByHuman}
	case SummaryDelivered, EscalationRecommended, SupersededByHuman:
		return []State{Closed}
	case Closed:
		return []State{}
	}
	return []State{}
}

// CanTransition reports whether a session may move from one state to the
// other. Self-transitions are never legal, and nothing leaves closed.
func CanTransition(from, to State) bool {
	return slices.Contains(Targets(from), to)
}

// LiveStates returns the live states in States order (a fresh slice).
func LiveStates() []State { return filter(State.Live) }

// EscalatableStates returns the states that may move to
// escalation_recommended, in States order (a fresh slice).
func EscalatableStates() []State { return filter(State.Escalatable) }

// Sources returns the states that may move to `to`, in States order (a
// fresh, non-nil slice, empty when nothing may), for a conditional
// "UPDATE … SET state = $to WHERE … AND state = ANY($n)" that enforces the
// table in the database.
func Sources(to State) []State {
	return filter(func(from State) bool { return CanTransition(from, to) })
}

// Strings returns the string values of states, for a query parameter.
func Strings(states []State) []string {
	out := make([]string, len(states))
	for i, s := range states {
		out[i] = string(s)
	}
	return out
}

func filter(keep func(State) bool) []State {
	out := []State{}
	for _, s := range States() {
		if keep(s) {
			out = append(out, s)
		}
	}
	return out
}

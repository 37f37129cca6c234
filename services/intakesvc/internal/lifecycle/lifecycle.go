// Package lifecycle is the dispute lifecycle state machine (docs/intake.md#the-lifecycle):
// the six states, the fourteen legal transitions, and the Mostro dispute
// statuses with the lifecycle move each one asks for. It is the one Go place
// that decides whether a transition is legal; the schema enforces the same
// table (a trigger on disputes and a CHECK on dispute_state_transitions, see
// pkg/schema/migrations/00001_core.sql), and a test keeps both in step.
package lifecycle

import (
	"errors"
	"fmt"
)

// State is a dispute's lifecycle state (disputes.lifecycle_state).
type State string

// The lifecycle states, spelled exactly as the reference stores them.
const (
	New       State = "new"
	Notified  State = "notified"
	Taken     State = "taken"
	Waiting   State = "waiting"
	Escalated State = "escalated"
	Resolved  State = "resolved"
)

// States lists every state in lifecycle order.
var States = []State{New, Notified, Taken, Waiting, Escalated, Resolved}

// allowed is the transition table. Everything else is illegal,
// including every self-transition but notified -> notified, and anything out
// of resolved (terminal).
var allowed = map[State][]State{
	New:       {Notified, Taken, Resolved},
	Notified:  {Notified, Taken, Escalated, Resolved},
	Taken:     {Waiting, Escalated, Resolved},
	Waiting:   {Taken, Escalated, Resolved},
	Escalated: {Resolved},
	Resolved:  nil,
}

// ErrInvalidTransition is matched by every *TransitionError.
var ErrInvalidTransition = errors.New("invalid state transition")

// TransitionError is an illegal lifecycle move.
type TransitionError struct {
	From, To State
}

// Error is the reference's text: "invalid state transition: <from> -> <to>".
func (e *TransitionError) Error() string {
	return fmt.Sprintf("invalid state transition: %s -> %s", e.From, e.To)
}

// Is makes errors.Is(err, ErrInvalidTransition) true.
func (e *TransitionError) Is(target error) bool { return target == ErrInvalidTransition }

// ParseState parses a stored state.
func ParseState(s string) (State, error) {
	st := State(s)
	if _, ok := allowed[st]; !ok {
		return "", fmt.Errorf("unknown lifecycle state %q", s)
	}
	return st, nil
}

// String returns the stored spelling.
func (s State) String() string { return string(s) }

// Terminal reports whether no transition leaves s.
func (s State) Terminal() bool { return s == Resolved }

// CanTransition reports whether from -> to is legal.
func CanTransition(from, to State) bool {
	for _, t := range allowed[from] {
		if t == to {
			return true
		}
	}
	return false
}

// Check returns a *TransitionError when from -> to is illegal.
func Check(from, to State) error {
	if !CanTransition(from, to) {
		return &TransitionError{From: from, To: to}
	}
	return nil
}

// Pairs returns every legal (from, to) pair, in table order.
func Pairs() [][2]State {
	var out [][2]State
	for _, from := range States {
		for _, to := range allowed[from] {
			out = append(out, [2]State{from, to})
		}
	}
	return out
}

// Triggers recorded in dispute_state_transitions.trigger besides event ids.
const (
	// TriggerInitialNotification is new -> notified after the first DM was
	// sent.
	TriggerInitialNotification = "initial_notification"
	// TriggerResolvedExternally is * -> resolved on a terminal Mostro
	// status.
	TriggerResolvedExternally = "dispute_resolved_externally"
)

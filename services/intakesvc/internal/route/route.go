// Package route decides what one verified dispute revision does to the
// dispute Serbero has recorded (or not): the reference daemon's dispatcher
// and handlers as a pure function, with the deliberate changes of
// docs/intake.md#the-intake-stream (newest revision per dispute wins; a
// dispute first seen after its initiated revision is still recorded).
//
// First sight of a dispute that is already past initiated (a late
// subscriber, or relays that only kept the latest revision while Serbero was
// down) is recorded rather than ignored, because an operator expects every
// dispute Mostro published to be in Serbero's records:
//   - in-progress: recorded as new, moved new -> taken (trigger: event id),
//     and solvers get the assignment DM (never the initial "requires
//     attention" DM: somebody already took it);
//   - a terminal status: recorded, moved new -> resolved (trigger
//     dispute_resolved_externally), no DM (the reference sends none for a
//     resolution either);
//   - an unrecognised status: nothing is recorded (there is no state to
//     keep), a warning is logged.
package route

import (
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
)

// Current is what the decision needs of a recorded dispute.
type Current struct {
	State lifecycle.State
	// EventID and EventTimestamp: the creating revision.
	EventID        string
	EventTimestamp int64
	// NewestEventID and NewestCreatedAt: the newest applied revision;
	// empty means the creating one.
	NewestEventID   string
	NewestCreatedAt int64
}

// Newest returns the newest applied revision's (created_at, id).
func (c Current) Newest() (int64, string) {
	if c.NewestEventID == "" {
		return c.EventTimestamp, c.EventID
	}
	return c.NewestCreatedAt, c.NewestEventID
}

// Outcome summarises a decision for logs and metrics.
type Outcome int

// The outcomes.
const (
	// Detected: a dispute seen for the first time is recorded.
	Detected Outcome = iota + 1
	// Applied: a newer revision of a recorded dispute is applied.
	Applied
	// Duplicate: the revision was applied before, or it is an initiated
	// revision of a dispute already recorded (duplicate_skip).
	Duplicate
	// Stale: an older revision arrived after a newer one; nothing changes.
	Stale
	// Ignored: nothing to record (an unrecognised status of a dispute
	// Serbero never saw).
	Ignored
)

// String names the outcome for logs and metric labels.
func (o Outcome) String() string {
	switch o {
	case Detected:
		return "detected"
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	case Stale:
		return "stale"
	case Ignored:
		return "ignored"
	default:
		return "unset"
	}
}

// Decision is what to do with one revision.
type Decision struct {
	Outcome Outcome
	// Insert records the dispute (state new, the revision as creator).
	Insert bool
	// Track makes the revision the newest applied one.
	Track bool
	// SetStatus updates disputes.dispute_status to the revision's status.
	SetStatus bool
	// To is the lifecycle move to make ("" for none), with its trigger.
	To      lifecycle.State
	Trigger string
	// Notify is the notification to send every solver: message.TypeInitial,
	// message.TypeAssignment or "".
	Notify string
	// UnknownStatus: the status is not recognised (logged as a warning,
	// state kept).
	UnknownStatus bool
	// Note says, for logs, why nothing happened when nothing did.
	Note string
}

// Decide routes rev against cur (nil when the dispute is not recorded).
func Decide(cur *Current, rev event.Revision) Decision {
	route := lifecycle.RouteOf(rev.Status)
	if cur == nil {
		switch route {
		case lifecycle.RouteNew:
			return Decision{Outcome: Detected, Insert: true, Notify: message.TypeInitial}
		case lifecycle.RouteTaken:
			return Decision{Outcome: Detected, Insert: true, To: lifecycle.Taken, Trigger: rev.EventID, Notify: message.TypeAssignment}
		case lifecycle.RouteResolved:
			return Decision{Outcome: Detected, Insert: true, To: lifecycle.Resolved, Trigger: lifecycle.TriggerResolvedExternally}
		default:
			return Decision{Outcome: Ignored, UnknownStatus: true, Note: "unrecognised status for a dispute never seen; nothing recorded"}
		}
	}

	newestAt, newestID := cur.Newest()
	if rev.EventID == newestID || rev.EventID == cur.EventID {
		return Decision{Outcome: Duplicate, Note: "revision already applied"}
	}
	if !event.Newer(rev.CreatedAt, rev.EventID, newestAt, newestID) {
		return Decision{Outcome: Stale, Note: "older than the newest applied revision"}
	}
	d := Decision{Outcome: Applied, Track: true, SetStatus: route != lifecycle.RouteUnknown}
	switch route {
	case lifecycle.RouteNew:
		// A newer initiated revision of a recorded dispute: tracked, but a
		// duplicate for the lifecycle (never notified twice).
		d.Outcome = Duplicate
		d.Note = "dispute already recorded"
	case lifecycle.RouteTaken:
		switch cur.State {
		case lifecycle.New, lifecycle.Notified:
			d.To, d.Trigger, d.Notify = lifecycle.Taken, rev.EventID, message.TypeAssignment
		case lifecycle.Resolved:
			d.SetStatus = false
			d.Note = "in-progress revision after resolution; state kept"
		default:
			d.Note = "already past notified; idempotent no-op"
		}
	case lifecycle.RouteResolved:
		if cur.State != lifecycle.Resolved {
			d.To, d.Trigger = lifecycle.Resolved, lifecycle.TriggerResolvedExternally
		} else {
			d.Note = "already resolved; no-op"
		}
	default:
		d.UnknownStatus = true
		d.Note = "unrecognised status; state kept"
	}
	return d
}

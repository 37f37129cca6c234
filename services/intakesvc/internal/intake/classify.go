package intake

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// Classes of permanent failures (the class column of the quarantine and
// the label of its metric).
const (
	// ClassIllegalTransition: the lifecycle move is not allowed.
	ClassIllegalTransition = "illegal_transition"
	// ClassData: Postgres refused a value (SQLSTATE class 22: a byte it
	// cannot store, a value out of range).
	ClassData = "data"
	// ClassConstraint: an integrity constraint refused the row (class 23).
	ClassConstraint = "constraint"
	// ClassLimit: a row is beyond what Postgres can hold (class 54: an
	// index row too large, too many columns).
	ClassLimit = "limit"
	// ClassInvalidPlan: the decision and the recorded dispute disagree.
	ClassInvalidPlan = "invalid_plan"
)

// Permanent reports whether applying an event failed in a way no retry
// can change, and its class. Everything else is transient and retried: a
// connection lost, a server restarting, a serialization failure or a
// deadlock, a timeout, an unknown error (never drop a dispute because
// Postgres was briefly unhappy). See docs/intake.md#poison-events.
func Permanent(err error) (string, bool) {
	if err == nil {
		return "", false
	}
	if errors.Is(err, lifecycle.ErrInvalidTransition) {
		return ClassIllegalTransition, true
	}
	if errors.Is(err, store.ErrInvalidPlan) {
		return ClassInvalidPlan, true
	}
	var pg *pgconn.PgError
	if !errors.As(err, &pg) || len(pg.Code) != 5 {
		return "", false
	}
	switch pg.Code[:2] {
	case "22":
		return ClassData, true
	case "23":
		if pg.Code == "23514" && pg.ConstraintName == "" {
			// The lifecycle trigger raises check_violation for an illegal
			// move (the schema's copy of lifecycle.Check).
			return ClassIllegalTransition, true
		}
		return ClassConstraint, true
	case "54":
		return ClassLimit, true
	}
	return "", false
}

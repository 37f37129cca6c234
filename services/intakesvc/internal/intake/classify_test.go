package intake_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/intake"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

func TestPermanentClassifiesApplyErrors(t *testing.T) {
	t.Parallel()
	pg := func(code, constraint string) error {
		return fmt.Errorf("insert dispute: %w", &pgconn.PgError{Code: code, ConstraintName: constraint})
	}
	cases := []struct {
		name  string
		err   error
		class string // "" for transient
	}{
		{"nil", nil, ""},
		{"illegal move", &lifecycle.TransitionError{From: lifecycle.Resolved, To: lifecycle.New}, intake.ClassIllegalTransition},
		{"invalid plan", fmt.Errorf("x: %w", store.ErrInvalidPlan), intake.ClassInvalidPlan},
		{"NUL byte", pg("22021", ""), intake.ClassData},
		{"value too long", pg("22001", ""), intake.ClassData},
		{"unique violation", pg("23505", "disputes_event_id_key"), intake.ClassConstraint},
		{"lifecycle trigger", pg("23514", ""), intake.ClassIllegalTransition},
		{"check constraint", pg("23514", "dispute_state_transitions_legal"), intake.ClassConstraint},
		{"index row too large", pg("54000", ""), intake.ClassLimit},
		{"serialization failure", pg("40001", ""), ""},
		{"deadlock", pg("40P01", ""), ""},
		{"admin shutdown", pg("57P01", ""), ""},
		{"too many connections", pg("53300", ""), ""},
		{"connection failure", pg("08006", ""), ""},
		{"statement timeout", pg("57014", ""), ""},
		{"not a database error", errors.New("connection reset by peer"), ""},
		{"deadline", context.DeadlineExceeded, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			class, ok := intake.Permanent(tc.err)
			require.Equal(t, tc.class != "", ok)
			require.Equal(t, tc.class, class)
		})
	}
}

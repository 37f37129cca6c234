// Package store is mediationsvc's SQL: it reads mediation_sessions and the
// mediation_events audit log, and owns the reasoning tables (the rationale
// store with its occurrences, and the prompt bundles kept by hash). It takes
// decisions as inputs and never makes them.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a session does not exist.
var ErrNotFound = errors.New("not found")

// Session is one mediation_sessions row (the columns operators read).
type Session struct {
	DisputeID        string
	LastTransitionAt int64
	PolicyHash       string
	PromptBundleID   string
	RoundCount       int64
	SessionID        string
	StartedAt        int64
	State            string
}

// Event is one mediation_events row.
type Event struct {
	ID             int64
	Kind           string
	OccurredAt     int64
	PayloadJSON    string
	PolicyHash     *string
	PromptBundleID *string
	RationaleID    *string
	SessionID      *string
}

// Store reads the mediation tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

const sessionColumns = `session_id, dispute_id, state, round_count, prompt_bundle_id, policy_hash, started_at, last_transition_at`

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.SessionID, &s.DisputeID, &s.State, &s.RoundCount, &s.PromptBundleID, &s.PolicyHash, &s.StartedAt, &s.LastTransitionAt)
	return s, err
}

// Session returns one session.
func (s *Store) Session(ctx context.Context, id string) (Session, error) {
	sess, err := scanSession(s.pool.QueryRow(ctx, `SELECT `+sessionColumns+` FROM mediation_sessions WHERE session_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Session{}, ErrNotFound
	}
	if err != nil {
		return Session{}, fmt.Errorf("get session: %w", err)
	}
	return sess, nil
}

// ListSessions lists sessions newest first, optionally for one dispute and
// in the given states.
func (s *Store) ListSessions(ctx context.Context, disputeID string, states []string, limit int) ([]Session, error) {
	rows, err := s.pool.Query(ctx, `
SELECT `+sessionColumns+` FROM mediation_sessions
WHERE ($1 = '' OR dispute_id = $1) AND (COALESCE(cardinality($2::text[]), 0) = 0 OR state = ANY($2))
ORDER BY started_at DESC, session_id
LIMIT $3`, disputeID, states, limit)
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Session, error) { return scanSession(r) })
	if err != nil {
		return nil, fmt.Errorf("list sessions: %w", err)
	}
	return out, nil
}

// AuditTrail returns every audit event of a dispute, oldest first: the
// events of its sessions and its dispute-scoped events (session_id NULL,
// payload_json->>'dispute_id' = the dispute).
func (s *Store) AuditTrail(ctx context.Context, disputeID string) ([]Event, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, session_id, kind, payload_json::text, rationale_id, prompt_bundle_id, policy_hash, occurred_at
FROM mediation_events
WHERE session_id IN (SELECT session_id FROM mediation_sessions WHERE dispute_id = $1)
   OR (session_id IS NULL AND payload_json ->> 'dispute_id' = $1)
ORDER BY id`, disputeID)
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.ID, &e.SessionID, &e.Kind, &e.PayloadJSON, &e.RationaleID, &e.PromptBundleID, &e.PolicyHash, &e.OccurredAt)
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	return out, nil
}

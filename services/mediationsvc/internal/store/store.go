// Package store is mediationsvc's SQL: it reads mediation_sessions (the
// audit trail is read through pkg/audit), and owns the reasoning tables (the rationale
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

// SessionIDs returns the ids of every session of a dispute, oldest first;
// the audit trail of the dispute is read through pkg/audit with them.
func (s *Store) SessionIDs(ctx context.Context, disputeID string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT session_id FROM mediation_sessions WHERE dispute_id = $1 ORDER BY started_at, session_id`, disputeID)
	if err != nil {
		return nil, fmt.Errorf("session ids of dispute %s: %w", disputeID, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("session ids of dispute %s: %w", disputeID, err)
	}
	return ids, nil
}

package store

// The read side of the mediation tables, for the operator API: sessions,
// their transcripts and their rationale occurrences (ids, never text).

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// Session is one mediation_sessions row (the columns operators read).
type Session struct {
	// AssignedSolver is the solver the session was assigned to ("" when
	// none).
	AssignedSolver string
	// CurrentClassification is the latest classification ("" when none).
	CurrentClassification string
	// CurrentConfidence is its confidence (nil when none).
	CurrentConfidence *float64
	DisputeID         string
	LastTransitionAt  int64
	PolicyHash        string
	PromptBundleID    string
	RoundCount        int64
	SessionID         string
	StartedAt         int64
	State             string
}

const sessionColumns = `session_id, dispute_id, state, round_count, prompt_bundle_id, policy_hash, started_at, last_transition_at,
COALESCE(assigned_solver, ''), COALESCE(current_classification, ''), current_confidence`

func scanSession(row pgx.Row) (Session, error) {
	var s Session
	err := row.Scan(&s.SessionID, &s.DisputeID, &s.State, &s.RoundCount, &s.PromptBundleID, &s.PolicyHash, &s.StartedAt, &s.LastTransitionAt,
		&s.AssignedSolver, &s.CurrentClassification, &s.CurrentConfidence)
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

// Message is one mediation_messages row: a dispute-chat message Serbero
// sent (outbound) or received (inbound). Content is party chat plaintext:
// it is served to the operator and never logged.
type Message struct {
	Content      string
	Direction    string
	ID           int64
	InnerEventID string
	// InnerCreatedAt is the inner event's created_at (Unix seconds).
	InnerCreatedAt int64
	Party          string
	// PersistedAt is when it was stored (Unix seconds).
	PersistedAt int64
	Stale       bool
}

// Transcript returns the messages of a session in conversation order: by
// the inner event's created_at, then by row id.
func (s *Store) Transcript(ctx context.Context, sessionID string) ([]Message, error) {
	rows, err := s.pool.Query(ctx, `
SELECT id, direction, party, inner_event_id, inner_event_created_at, persisted_at, stale = 1, content
FROM mediation_messages WHERE session_id = $1
ORDER BY inner_event_created_at, id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("transcript of session %s: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Message, error) {
		var m Message
		err := r.Scan(&m.ID, &m.Direction, &m.Party, &m.InnerEventID, &m.InnerCreatedAt, &m.PersistedAt, &m.Stale, &m.Content)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("transcript of session %s: %w", sessionID, err)
	}
	return out, nil
}

// SessionRationales returns the rationale occurrences bound to a session,
// oldest first. Only ids and provenance: the text stays in the rationale
// store.
func (s *Store) SessionRationales(ctx context.Context, sessionID string) ([]RationaleOccurrence, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+occurrenceColumns+` FROM reasoning_rationale_occurrences WHERE session_id = $1 ORDER BY id`, sessionID)
	if err != nil {
		return nil, fmt.Errorf("rationale occurrences of session %s: %w", sessionID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RationaleOccurrence, error) { return scanOccurrence(r) })
	if err != nil {
		return nil, fmt.Errorf("rationale occurrences of session %s: %w", sessionID, err)
	}
	return out, nil
}

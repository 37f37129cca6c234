package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/notiflog"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// GetDispute returns one dispute with its transitions and notifications,
// oldest first. ErrNotFound when it does not exist.
func (s *Store) GetDispute(ctx context.Context, disputeID string) (Dispute, []Transition, []Notification, error) {
	d, err := scanDispute(s.pool.QueryRow(ctx, `SELECT `+disputeCols+` FROM disputes WHERE dispute_id = $1`, disputeID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Dispute{}, nil, nil, ErrNotFound
	}
	if err != nil {
		return Dispute{}, nil, nil, fmt.Errorf("read dispute: %w", err)
	}
	ts, err := s.Transitions(ctx, disputeID)
	if err != nil {
		return Dispute{}, nil, nil, err
	}
	logged, err := notiflog.ByDispute(ctx, s.pool, disputeID)
	if err != nil {
		return Dispute{}, nil, nil, fmt.Errorf("read notifications: %w", err)
	}
	ns := make([]Notification, len(logged))
	for i, n := range logged {
		ns[i] = Notification{ID: n.ID, DisputeID: n.DisputeID, SolverPubkey: n.SolverPubkey, SentAt: n.SentAt,
			Status: string(n.Status), ErrorMessage: n.Error, NotifType: string(n.Type)}
	}
	return d, ts, ns, nil
}

const transitionCols = `id, dispute_id, COALESCE(from_state, ''), to_state, transitioned_at, COALESCE(trigger, '')`

func scanTransition(r pgx.Row) (Transition, error) {
	var t Transition
	var from, to string
	err := r.Scan(&t.ID, &t.DisputeID, &from, &to, &t.TransitionedAt, &t.Trigger)
	t.From, t.To = lifecycle.State(from), lifecycle.State(to)
	return t, err
}

// Transitions returns a dispute's lifecycle history, oldest first.
func (s *Store) Transitions(ctx context.Context, disputeID string) ([]Transition, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+transitionCols+` FROM dispute_state_transitions WHERE dispute_id = $1 ORDER BY id`, disputeID)
	if err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	ts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Transition, error) { return scanTransition(r) })
	if err != nil {
		return nil, fmt.Errorf("read transitions: %w", err)
	}
	return ts, nil
}

// ListFilter selects disputes for ListDisputes.
type ListFilter struct {
	// States, when not empty, keeps only these lifecycle states.
	States []lifecycle.State
	// DetectedAfter (inclusive) and DetectedBefore (exclusive), unix s; 0
	// means unbounded.
	DetectedAfter, DetectedBefore int64
	// Limit is the page size.
	Limit int
	// After continues a listing after this (detected_at, dispute_id).
	After *PageKey
}

// PageKey is a position in the newest-first listing.
type PageKey struct {
	DetectedAt int64
	DisputeID  string
}

// ListDisputes lists disputes newest detection first. It returns the key of
// the next page, nil on the last page.
func (s *Store) ListDisputes(ctx context.Context, f ListFilter) ([]Dispute, *PageKey, error) {
	states := make([]string, len(f.States))
	for i, st := range f.States {
		states[i] = string(st)
	}
	var afterAt *int64
	var afterID *string
	if f.After != nil {
		afterAt, afterID = &f.After.DetectedAt, &f.After.DisputeID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+disputeCols+` FROM disputes
		WHERE (cardinality($1::text[]) = 0 OR lifecycle_state = ANY($1))
		  AND ($2::bigint = 0 OR detected_at >= $2)
		  AND ($3::bigint = 0 OR detected_at < $3)
		  AND ($4::bigint IS NULL OR (detected_at, dispute_id) < ($4, $5::text))
		ORDER BY detected_at DESC, dispute_id DESC LIMIT $6`,
		states, f.DetectedAfter, f.DetectedBefore, afterAt, afterID, f.Limit+1)
	if err != nil {
		return nil, nil, fmt.Errorf("list disputes: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Dispute, error) { return scanDispute(r) })
	if err != nil {
		return nil, nil, fmt.Errorf("list disputes: %w", err)
	}
	if len(list) <= f.Limit {
		return list, nil, nil
	}
	list = list[:f.Limit]
	last := list[len(list)-1]
	return list, &PageKey{DetectedAt: last.DetectedAt, DisputeID: last.DisputeID}, nil
}

// StateCounts counts disputes per lifecycle state (every state present,
// zero included).
func (s *Store) StateCounts(ctx context.Context) (map[lifecycle.State]int64, error) {
	out := make(map[lifecycle.State]int64, len(lifecycle.States))
	for _, st := range lifecycle.States {
		out[st] = 0
	}
	rows, err := s.pool.Query(ctx, `SELECT lifecycle_state, count(*) FROM disputes GROUP BY lifecycle_state`)
	if err != nil {
		return nil, fmt.Errorf("count disputes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count disputes: %w", err)
		}
		out[lifecycle.State(st)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count disputes: %w", err)
	}
	return out, nil
}

// Unix is a helper for callers that convert unix seconds.
func Unix(sec int64) time.Time { return time.Unix(sec, 0).UTC() }

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Errors of the session writes.
var (
	// ErrLeaseLost means the caller no longer holds the session's lease
	// (another replica took it over, or the lease expired): nothing was
	// written and the caller must stop working on the session.
	ErrLeaseLost = errors.New("session lease lost")
	// ErrAlreadyOpen means the dispute already has a live session.
	ErrAlreadyOpen = errors.New("dispute already has a live session")
	// ErrIllegalTransition means the session was not in a state the
	// transition starts from; nothing was written.
	ErrIllegalTransition = errors.New("invalid state transition")
)

// Fence names a session lease term: writes under it succeed only while it
// is current.
type Fence struct {
	SessionID string
	Holder    string
	Term      int64
}

// EngineSession is a mediation_sessions row as the engine sees it.
type EngineSession struct {
	SessionID, DisputeID, State, InitiatorRole string
	PromptBundleID, PolicyHash                 string
	BuyerTrade, SellerTrade                    string
	BuyerShared, SellerShared                  string
	TakeEventID                                *string
	RoundCount, RoundCountLastEvaluated        int64
	ConsecutiveEvalFailures, ChatCursor        int64
	BuyerLastSeen, SellerLastSeen              *int64
	StartedAt, LastTransitionAt                int64
	DetectedAt, FirstOutboundAt, EndedAt       *int64
	LeaseHolder                                string
	LeaseTerm                                  int64
}

// Fence returns the session's current lease term.
func (s EngineSession) Fence() Fence {
	return Fence{SessionID: s.SessionID, Holder: s.LeaseHolder, Term: s.LeaseTerm}
}

const engineSessionColumns = `session_id, dispute_id, state, initiator_role, prompt_bundle_id, policy_hash,
COALESCE(buyer_trade_pubkey, ''), COALESCE(seller_trade_pubkey, ''), COALESCE(buyer_shared_pubkey, ''),
COALESCE(seller_shared_pubkey, ''), take_event_id, round_count, round_count_last_evaluated, consecutive_eval_failures,
chat_cursor, buyer_last_seen_inner_ts, seller_last_seen_inner_ts, started_at, last_transition_at, detected_at,
first_outbound_at, ended_at, lease_holder, lease_term`

// scanEngineSession scans engineSessionColumns, then extra columns into
// extra.
func scanEngineSession(row pgx.Row, extra ...any) (EngineSession, error) {
	var s EngineSession
	dest := append([]any{&s.SessionID, &s.DisputeID, &s.State, &s.InitiatorRole, &s.PromptBundleID, &s.PolicyHash,
		&s.BuyerTrade, &s.SellerTrade, &s.BuyerShared, &s.SellerShared, &s.TakeEventID, &s.RoundCount,
		&s.RoundCountLastEvaluated, &s.ConsecutiveEvalFailures, &s.ChatCursor, &s.BuyerLastSeen, &s.SellerLastSeen,
		&s.StartedAt, &s.LastTransitionAt, &s.DetectedAt, &s.FirstOutboundAt, &s.EndedAt, &s.LeaseHolder, &s.LeaseTerm}, extra...)
	err := row.Scan(dest...)
	return s, err
}

func collectEngineSessions(what string, rows pgx.Rows, err error) ([]EngineSession, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (EngineSession, error) { return scanEngineSession(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// NewSession is a session to insert.
type NewSession struct {
	SessionID, DisputeID, State, InitiatorRole string
	PromptBundleID, PolicyHash                 string
	BuyerTrade, SellerTrade                    string
	BuyerShared, SellerShared                  string
	ChatCursor                                 int64
	StartedAt                                  int64
	DetectedAt                                 int64
	// Holder gets the session's first lease term, for LeaseTTL.
	Holder   string
	LeaseTTL time.Duration
}

// InsertSession inserts a session leased to its creator (term 1).
// ErrAlreadyOpen when the dispute has a live session.
func (s *Store) InsertSession(ctx context.Context, tx pgx.Tx, n NewSession) (EngineSession, error) {
	var live bool
	if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM mediation_sessions WHERE dispute_id = $1
AND state IN ('opening', 'awaiting_response', 'classified', 'follow_up_pending', 'summary_pending'))`, n.DisputeID).Scan(&live); err != nil {
		return EngineSession{}, fmt.Errorf("insert session: %w", err)
	}
	if live {
		return EngineSession{}, ErrAlreadyOpen
	}
	sess, err := scanEngineSession(tx.QueryRow(ctx, `
INSERT INTO mediation_sessions (session_id, dispute_id, state, initiator_role, prompt_bundle_id, policy_hash,
    buyer_trade_pubkey, seller_trade_pubkey, buyer_shared_pubkey, seller_shared_pubkey, chat_cursor, started_at,
    last_transition_at, detected_at, lease_holder, lease_term, lease_expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, NULLIF($13, 0), $14, 1, now() + make_interval(secs => $15))
RETURNING `+engineSessionColumns,
		n.SessionID, n.DisputeID, n.State, n.InitiatorRole, n.PromptBundleID, n.PolicyHash, n.BuyerTrade, n.SellerTrade,
		n.BuyerShared, n.SellerShared, n.ChatCursor, n.StartedAt, n.DetectedAt, n.Holder, n.LeaseTTL.Seconds()))
	if err != nil {
		return EngineSession{}, fmt.Errorf("insert session: %w", err)
	}
	return sess, nil
}

// LockSession locks the session under the caller's lease (FOR UPDATE in
// tx). ErrLeaseLost when the lease is not the caller's any more.
func (s *Store) LockSession(ctx context.Context, tx pgx.Tx, f Fence) (EngineSession, error) {
	sess, err := scanEngineSession(tx.QueryRow(ctx, `SELECT `+engineSessionColumns+` FROM mediation_sessions
WHERE session_id = $1 AND lease_holder = $2 AND lease_term = $3 AND lease_expires_at > now() FOR UPDATE`,
		f.SessionID, f.Holder, f.Term))
	if errors.Is(err, pgx.ErrNoRows) {
		return EngineSession{}, ErrLeaseLost
	}
	if err != nil {
		return EngineSession{}, fmt.Errorf("lock session %s: %w", f.SessionID, err)
	}
	return sess, nil
}

// EngineSessionByID returns a session without locking it.
func (s *Store) EngineSessionByID(ctx context.Context, db DB, id string) (EngineSession, error) {
	sess, err := scanEngineSession(db.QueryRow(ctx, `SELECT `+engineSessionColumns+` FROM mediation_sessions WHERE session_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return EngineSession{}, ErrNotFound
	}
	if err != nil {
		return EngineSession{}, fmt.Errorf("get session %s: %w", id, err)
	}
	return sess, nil
}

// LiveSessionForUpdate locks the dispute's live session, whoever holds it
// (for the reactions to the dispute's resolution). ok is false without one.
// heldElsewhere says another holder's lease is still running.
func (s *Store) LiveSessionForUpdate(ctx context.Context, tx pgx.Tx, disputeID, holder string, liveStates []string) (sess EngineSession, ok, heldElsewhere bool, err error) {
	var running bool
	tmp, err := scanEngineSession(tx.QueryRow(ctx, `SELECT `+engineSessionColumns+`, lease_expires_at > now() FROM mediation_sessions
WHERE dispute_id = $1 AND state = ANY($2) ORDER BY started_at DESC LIMIT 1 FOR UPDATE`, disputeID, liveStates), &running)
	if errors.Is(err, pgx.ErrNoRows) {
		return EngineSession{}, false, false, nil
	}
	if err != nil {
		return EngineSession{}, false, false, fmt.Errorf("live session of %s: %w", disputeID, err)
	}
	return tmp, true, running && tmp.LeaseHolder != holder && tmp.LeaseHolder != "", nil
}

// LatestSession returns the dispute's newest session by started_at, any
// state (ok false without one).
func (s *Store) LatestSession(ctx context.Context, db DB, disputeID string) (EngineSession, bool, error) {
	sess, err := scanEngineSession(db.QueryRow(ctx, `SELECT `+engineSessionColumns+` FROM mediation_sessions
WHERE dispute_id = $1 ORDER BY started_at DESC, session_id DESC LIMIT 1`, disputeID))
	if errors.Is(err, pgx.ErrNoRows) {
		return EngineSession{}, false, nil
	}
	if err != nil {
		return EngineSession{}, false, fmt.Errorf("latest session of %s: %w", disputeID, err)
	}
	return sess, true, nil
}

// Transition moves a session to `to` if its state is one of from.
// ErrIllegalTransition (wrapped with the actual state) otherwise.
func (s *Store) Transition(ctx context.Context, db DB, id string, from []string, to string, now int64) error {
	tag, err := db.Exec(ctx, `UPDATE mediation_sessions SET state = $3, last_transition_at = $4,
    ended_at = CASE WHEN $3 IN ('summary_delivered', 'escalation_recommended', 'superseded_by_human', 'closed')
                    THEN COALESCE(ended_at, $4) ELSE ended_at END
WHERE session_id = $1 AND state = ANY($2)`, id, from, to, now)
	if err != nil {
		return fmt.Errorf("move session %s to %s: %w", id, to, err)
	}
	if tag.RowsAffected() == 0 {
		var actual string
		if err := db.QueryRow(ctx, `SELECT state FROM mediation_sessions WHERE session_id = $1`, id).Scan(&actual); err != nil {
			return fmt.Errorf("%w: ? -> %s", ErrIllegalTransition, to)
		}
		return fmt.Errorf("%w: %s -> %s", ErrIllegalTransition, actual, to)
	}
	return nil
}

// AcquireLeases takes up to limit live sessions whose lease is free or
// expired for holder (a new term each) and returns them.
func (s *Store) AcquireLeases(ctx context.Context, holder string, ttl time.Duration, liveStates []string, limit int) ([]EngineSession, error) {
	rows, err := s.pool.Query(ctx, `
UPDATE mediation_sessions SET lease_holder = $1, lease_term = lease_term + 1, lease_expires_at = now() + make_interval(secs => $2)
WHERE session_id IN (
    SELECT session_id FROM mediation_sessions
    WHERE state = ANY($3) AND lease_expires_at < now()
    ORDER BY started_at LIMIT $4 FOR UPDATE SKIP LOCKED)
RETURNING `+engineSessionColumns, holder, ttl.Seconds(), liveStates, limit)
	return collectEngineSessions("acquire session leases", rows, err)
}

// RenewLeases extends every running lease of holder and returns the
// session ids it still holds.
func (s *Store) RenewLeases(ctx context.Context, holder string, ttl time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, `UPDATE mediation_sessions SET lease_expires_at = now() + make_interval(secs => $2)
WHERE lease_holder = $1 AND lease_expires_at > now() RETURNING session_id`, holder, ttl.Seconds())
	if err != nil {
		return nil, fmt.Errorf("renew session leases: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("renew session leases: %w", err)
	}
	return ids, nil
}

// ReleaseLease gives one lease up at once (the session ended, or the
// process stops), so another replica can take a live session over.
func (s *Store) ReleaseLease(ctx context.Context, f Fence) error {
	_, err := s.pool.Exec(ctx, `UPDATE mediation_sessions SET lease_holder = '', lease_expires_at = '-infinity'
WHERE session_id = $1 AND lease_holder = $2 AND lease_term = $3`, f.SessionID, f.Holder, f.Term)
	if err != nil {
		return fmt.Errorf("release lease of %s: %w", f.SessionID, err)
	}
	return nil
}

// SetTakeEvent records the in-progress revision Serbero's take caused,
// once (false when one was already recorded).
func (s *Store) SetTakeEvent(ctx context.Context, db DB, sessionID, eventID string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE mediation_sessions SET take_event_id = $2 WHERE session_id = $1 AND take_event_id IS NULL`,
		sessionID, eventID)
	if err != nil {
		return false, fmt.Errorf("record take event of %s: %w", sessionID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// AdvanceEvaluated sets the evaluator marker and clears the failure
// streak.
func (s *Store) AdvanceEvaluated(ctx context.Context, db DB, sessionID string, marker int64) error {
	_, err := db.Exec(ctx, `UPDATE mediation_sessions SET round_count_last_evaluated = $2, consecutive_eval_failures = 0
WHERE session_id = $1`, sessionID, marker)
	if err != nil {
		return fmt.Errorf("advance evaluation marker of %s: %w", sessionID, err)
	}
	return nil
}

// IncEvalFailures adds one to the evaluation failure streak and returns it.
func (s *Store) IncEvalFailures(ctx context.Context, db DB, sessionID string) (int64, error) {
	var n int64
	err := db.QueryRow(ctx, `UPDATE mediation_sessions SET consecutive_eval_failures = consecutive_eval_failures + 1
WHERE session_id = $1 RETURNING consecutive_eval_failures`, sessionID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count evaluation failure of %s: %w", sessionID, err)
	}
	return n, nil
}

// TouchSession sets last_transition_at (a follow-up round went out).
func (s *Store) TouchSession(ctx context.Context, db DB, sessionID string, now int64) error {
	_, err := db.Exec(ctx, `UPDATE mediation_sessions SET last_transition_at = $2 WHERE session_id = $1`, sessionID, now)
	if err != nil {
		return fmt.Errorf("touch session %s: %w", sessionID, err)
	}
	return nil
}

// SessionStateCounts counts sessions by state.
func (s *Store) SessionStateCounts(ctx context.Context) (map[string]int64, error) {
	rows, err := s.pool.Query(ctx, `SELECT state, count(*) FROM mediation_sessions GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("count sessions: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count sessions: %w", err)
		}
		out[st] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count sessions: %w", err)
	}
	return out, nil
}

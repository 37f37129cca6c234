package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// The start states of mediation_disputes (see the migration 00014 and
// docs/mediation.md#the-engine).
const (
	StartPending    = "pending"
	StartStarted    = "started"
	StartEscalated  = "escalated"
	StartSummarized = "summarized"
	StartSuperseded = "superseded"
	StartResolved   = "resolved"
)

// EligibleLifecycles are the lifecycle states in which a dispute may be
// mediated.
var EligibleLifecycles = []string{"new", "notified", "taken", "waiting"}

// DisputeSnapshot is what the engine learns of a dispute from a change of
// intakesvc's feed.
type DisputeSnapshot struct {
	DisputeID, InitiatorRole, Lifecycle, Status, NewestEventID string
	DetectedAt, EventTimestamp                                 int64
}

// Dispute is one mediation_disputes row.
type Dispute struct {
	DisputeSnapshot
	StartState        string
	SummarizedEventID *string
	Attempts          int
	LastStopReason    *string
	ReportState       string
}

const disputeColumns = `dispute_id, initiator_role, lifecycle_state, dispute_status, newest_event_id, detected_at,
event_timestamp, start_state, summarized_event_id, attempts, last_stop_reason, report_state`

func scanDispute(row pgx.Row) (Dispute, error) {
	var d Dispute
	err := row.Scan(&d.DisputeID, &d.InitiatorRole, &d.Lifecycle, &d.Status, &d.NewestEventID, &d.DetectedAt,
		&d.EventTimestamp, &d.StartState, &d.SummarizedEventID, &d.Attempts, &d.LastStopReason, &d.ReportState)
	return d, err
}

// Eligible reports whether the snapshot alone allows a start: an
// eligible lifecycle and a newest revision still initiated (only a
// dispute no solver holds is ever taken).
func (d Dispute) Eligible() bool {
	if d.StartState != StartPending || d.Status != "initiated" {
		return false
	}
	for _, l := range EligibleLifecycles {
		if d.Lifecycle == l {
			return true
		}
	}
	return false
}

// UpsertDispute records a snapshot. A dispute whose session ended with a
// delivered summary becomes pending again when a new initiated revision
// (another event id) arrives.
func (s *Store) UpsertDispute(ctx context.Context, d DisputeSnapshot) (Dispute, error) {
	row := s.pool.QueryRow(ctx, `
INSERT INTO mediation_disputes (dispute_id, initiator_role, lifecycle_state, dispute_status, newest_event_id,
    detected_at, event_timestamp)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (dispute_id) DO UPDATE SET
    initiator_role = EXCLUDED.initiator_role,
    lifecycle_state = EXCLUDED.lifecycle_state,
    dispute_status = EXCLUDED.dispute_status,
    newest_event_id = EXCLUDED.newest_event_id,
    start_state = CASE
        WHEN mediation_disputes.start_state = 'summarized' AND EXCLUDED.dispute_status = 'initiated'
             AND EXCLUDED.newest_event_id IS DISTINCT FROM mediation_disputes.summarized_event_id
        THEN 'pending' ELSE mediation_disputes.start_state END,
    attempts = CASE
        WHEN mediation_disputes.start_state = 'summarized' AND EXCLUDED.dispute_status = 'initiated'
             AND EXCLUDED.newest_event_id IS DISTINCT FROM mediation_disputes.summarized_event_id
        THEN 0 ELSE mediation_disputes.attempts END,
    updated_at = now()
RETURNING `+disputeColumns,
		d.DisputeID, d.InitiatorRole, d.Lifecycle, d.Status, d.NewestEventID, d.DetectedAt, d.EventTimestamp)
	out, err := scanDispute(row)
	if err != nil {
		return Dispute{}, fmt.Errorf("record dispute %s: %w", d.DisputeID, err)
	}
	return out, nil
}

// GetDispute returns one row (ErrNotFound when the engine never heard of
// the dispute).
func (s *Store) GetDispute(ctx context.Context, db DB, id string) (Dispute, error) {
	d, err := scanDispute(db.QueryRow(ctx, `SELECT `+disputeColumns+` FROM mediation_disputes WHERE dispute_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Dispute{}, ErrNotFound
	}
	if err != nil {
		return Dispute{}, fmt.Errorf("get dispute %s: %w", id, err)
	}
	return d, nil
}

// ClaimStart claims a pending dispute's start for holder until ttl from
// now. With due, only a dispute whose backoff has passed is claimed. It
// returns false when a claim is running (another replica's, or another
// start worker's of this one), it is not pending, or not due.
func (s *Store) ClaimStart(ctx context.Context, id, holder string, ttl time.Duration, due bool) (Dispute, bool, error) {
	d, err := scanDispute(s.pool.QueryRow(ctx, `
UPDATE mediation_disputes SET claim_holder = $2, claim_expires_at = now() + make_interval(secs => $3), updated_at = now()
WHERE dispute_id = $1 AND start_state = 'pending'
  AND (claim_holder = '' OR claim_expires_at < now())
  AND (NOT $4 OR next_attempt_at <= now())
RETURNING `+disputeColumns, id, holder, ttl.Seconds(), due))
	if errors.Is(err, pgx.ErrNoRows) {
		return Dispute{}, false, nil
	}
	if err != nil {
		return Dispute{}, false, fmt.Errorf("claim start of %s: %w", id, err)
	}
	return d, true, nil
}

// DueStarts lists pending, eligible, unclaimed disputes whose backoff has
// passed, oldest dispute event first.
func (s *Store) DueStarts(ctx context.Context, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
SELECT dispute_id FROM mediation_disputes
WHERE start_state = 'pending' AND next_attempt_at <= now() AND dispute_status = 'initiated'
  AND lifecycle_state = ANY($1) AND (claim_holder = '' OR claim_expires_at < now())
ORDER BY event_timestamp, dispute_id LIMIT $2`, EligibleLifecycles, limit)
	if err != nil {
		return nil, fmt.Errorf("due starts: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("due starts: %w", err)
	}
	return ids, nil
}

// NextStartDue returns how long until the next pending start is due
// (false when none is pending).
func (s *Store) NextStartDue(ctx context.Context) (time.Duration, bool, error) {
	var secs *float64
	err := s.pool.QueryRow(ctx, `
SELECT EXTRACT(EPOCH FROM min(next_attempt_at) - now())::float8 FROM mediation_disputes
WHERE start_state = 'pending' AND dispute_status = 'initiated' AND lifecycle_state = ANY($1)`, EligibleLifecycles).Scan(&secs)
	if err != nil {
		return 0, false, fmt.Errorf("next start due: %w", err)
	}
	if secs == nil {
		return 0, false, nil
	}
	return max(time.Duration(*secs*float64(time.Second)), 0), true, nil
}

// StopStart records a start attempt that stopped before a session: the
// attempt count grows, the next attempt waits backoff, the claim is
// released.
func (s *Store) StopStart(ctx context.Context, id, holder, reason string, backoff time.Duration) error {
	_, err := s.pool.Exec(ctx, `
UPDATE mediation_disputes SET attempts = attempts + 1, last_stop_reason = $3,
    next_attempt_at = now() + make_interval(secs => $4), claim_holder = '', claim_expires_at = '-infinity', updated_at = now()
WHERE dispute_id = $1 AND claim_holder = $2`, id, holder, reason, backoff.Seconds())
	if err != nil {
		return fmt.Errorf("stop start of %s: %w", id, err)
	}
	return nil
}

// ReleaseStart gives a claim up without counting an attempt.
func (s *Store) ReleaseStart(ctx context.Context, id, holder string) error {
	_, err := s.pool.Exec(ctx, `UPDATE mediation_disputes SET claim_holder = '', claim_expires_at = '-infinity'
WHERE dispute_id = $1 AND claim_holder = $2`, id, holder)
	if err != nil {
		return fmt.Errorf("release start of %s: %w", id, err)
	}
	return nil
}

// SetStartState moves a dispute's start state (in the caller's
// transaction) and releases any claim. summarizedEventID is recorded with
// StartSummarized.
func (s *Store) SetStartState(ctx context.Context, db DB, id, state string, summarizedEventID string) error {
	_, err := db.Exec(ctx, `
UPDATE mediation_disputes SET start_state = $2, claim_holder = '', claim_expires_at = '-infinity', updated_at = now(),
    summarized_event_id = CASE WHEN $2 = 'summarized' THEN NULLIF($3, '') ELSE summarized_event_id END
WHERE dispute_id = $1`, id, state, summarizedEventID)
	if err != nil {
		return fmt.Errorf("set start state of %s: %w", id, err)
	}
	return nil
}

// WakeStarts makes pending starts stopped for one of reasons due now (for
// example every auth_pending one when authorization arrives). It returns
// how many.
func (s *Store) WakeStarts(ctx context.Context, reasons ...string) (int64, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE mediation_disputes SET next_attempt_at = now()
WHERE start_state = 'pending' AND last_stop_reason = ANY($1) AND next_attempt_at > now()`, reasons)
	if err != nil {
		return 0, fmt.Errorf("wake starts: %w", err)
	}
	return tag.RowsAffected(), nil
}

// MarkReportDue marks the final resolution report of a dispute due (once
// per dispute: false when it already was). The dispute row is created if
// the engine never heard of it.
func (s *Store) MarkReportDue(ctx context.Context, db DB, id, status, eventID string) (bool, error) {
	tag, err := db.Exec(ctx, `
UPDATE mediation_disputes SET report_state = 'pending', report_status = $2, report_event_id = $3, updated_at = now()
WHERE dispute_id = $1 AND report_state = 'none'`, id, status, eventID)
	if err != nil {
		return false, fmt.Errorf("mark report of %s due: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// DueReport is a final report to send.
type DueReport struct {
	DisputeID, Status, EventID string
}

// DueReports lists reports marked due and not sent.
func (s *Store) DueReports(ctx context.Context, limit int) ([]DueReport, error) {
	rows, err := s.pool.Query(ctx, `SELECT dispute_id, COALESCE(report_status, ''), COALESCE(report_event_id, '')
FROM mediation_disputes WHERE report_state = 'pending' ORDER BY updated_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("due reports: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DueReport, error) {
		var d DueReport
		return d, r.Scan(&d.DisputeID, &d.Status, &d.EventID)
	})
	if err != nil {
		return nil, fmt.Errorf("due reports: %w", err)
	}
	return out, nil
}

// MarkReportSent records that the report went out (false when another
// replica recorded it first).
func (s *Store) MarkReportSent(ctx context.Context, db DB, id string) (bool, error) {
	tag, err := db.Exec(ctx, `UPDATE mediation_disputes SET report_state = 'sent', updated_at = now()
WHERE dispute_id = $1 AND report_state = 'pending'`, id)
	if err != nil {
		return false, fmt.Errorf("mark report of %s sent: %w", id, err)
	}
	return tag.RowsAffected() == 1, nil
}

// FeedCursor returns the engine's position in intakesvc's change feed (0
// at first start).
func (s *Store) FeedCursor(ctx context.Context) (int64, error) {
	var c int64
	err := s.pool.QueryRow(ctx, `SELECT after_cursor FROM mediation_feed_cursor`).Scan(&c)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read feed cursor: %w", err)
	}
	return c, nil
}

// AdvanceFeedCursor records that every change up to c was handled (the
// stored position never moves back).
func (s *Store) AdvanceFeedCursor(ctx context.Context, c int64) error {
	_, err := s.pool.Exec(ctx, `
INSERT INTO mediation_feed_cursor (singleton, after_cursor) VALUES (true, $1)
ON CONFLICT (singleton) DO UPDATE SET after_cursor = GREATEST(mediation_feed_cursor.after_cursor, EXCLUDED.after_cursor)`, c)
	if err != nil {
		return fmt.Errorf("advance feed cursor: %w", err)
	}
	return nil
}

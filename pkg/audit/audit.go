package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the functions run on: a pool, a connection or a transaction.
// Writers pass their transaction, so the audit row commits with what it
// records.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Errors of the package.
var (
	// ErrInvalidEvent means Append refused an event: its scope does not
	// match its session_id, a dispute-scoped payload names no dispute, a
	// variant is incomplete, or occurred_at is missing. Nothing was
	// written.
	ErrInvalidEvent = errors.New("invalid audit event")
	// ErrNotFound means no row has that id.
	ErrNotFound = errors.New("audit event not found")
)

// Event is one row to append.
type Event struct {
	// SessionID is the session_id column: set for session-scoped rows, nil
	// for dispute- and daemon-scoped ones.
	SessionID *string
	// Payload is the payload_json column; its type fixes the kind column.
	Payload Payload
	// RationaleID, PromptBundleID and PolicyHash are the columns of the
	// same names (nil = NULL). Which kinds set them is in the payload
	// types' docs.
	RationaleID    *string
	PromptBundleID *string
	PolicyHash     *string
	// OccurredAt is the occurred_at column, unix seconds (required: the
	// caller's clock decides it).
	OccurredAt int64
}

// Encode checks ev and returns its kind and payload JSON.
func (ev Event) Encode() (Kind, []byte, error) {
	if ev.Payload == nil {
		return "", nil, fmt.Errorf("%w: no payload", ErrInvalidEvent)
	}
	kind := ev.Payload.Kind()
	if ev.OccurredAt <= 0 {
		return "", nil, fmt.Errorf("%w: %s: occurred_at is required", ErrInvalidEvent, kind)
	}
	if v, ok := ev.Payload.(validator); ok {
		if err := v.validate(); err != nil {
			return "", nil, fmt.Errorf("%w: %s: %w", ErrInvalidEvent, kind, err)
		}
	}
	b, err := json.Marshal(ev.Payload)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %s: encode payload: %w", ErrInvalidEvent, kind, err)
	}
	hasSession := ev.SessionID != nil && *ev.SessionID != ""
	switch ev.Payload.Scope() {
	case ScopeSession:
		if !hasSession {
			return "", nil, fmt.Errorf("%w: %s is session-scoped: session_id is required", ErrInvalidEvent, kind)
		}
	case ScopeDispute, ScopeDaemon:
		if ev.SessionID != nil {
			return "", nil, fmt.Errorf("%w: %s is %s-scoped: session_id must be NULL", ErrInvalidEvent, kind, ev.Payload.Scope())
		}
	case ScopeEither, ScopeUnchecked:
		if ev.SessionID != nil && !hasSession {
			return "", nil, fmt.Errorf("%w: %s: session_id is empty (nil means dispute-scoped)", ErrInvalidEvent, kind)
		}
	}
	needsDispute := ev.Payload.Scope() == ScopeDispute || (ev.Payload.Scope() == ScopeEither && !hasSession)
	if needsDispute {
		var d struct {
			DisputeID string `json:"dispute_id"`
		}
		if json.Unmarshal(b, &d) != nil || d.DisputeID == "" {
			return "", nil, fmt.Errorf("%w: %s without a session must name its dispute (payload dispute_id)", ErrInvalidEvent, kind)
		}
	}
	return kind, b, nil
}

// Append writes ev and returns the new row's id (ids grow in insert order;
// a handoff_prepared id is the handoff's handoff_event_id).
func Append(ctx context.Context, db DB, ev Event) (int64, error) {
	kind, payload, err := ev.Encode()
	if err != nil {
		return 0, err
	}
	var id int64
	err = db.QueryRow(ctx, `
INSERT INTO mediation_events (session_id, kind, payload_json, rationale_id, prompt_bundle_id, policy_hash, occurred_at)
VALUES ($1, $2, $3::jsonb, $4, $5, $6, $7)
RETURNING id`, ev.SessionID, string(kind), string(payload), ev.RationaleID, ev.PromptBundleID, ev.PolicyHash, ev.OccurredAt).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("append %s audit event: %w", kind, err)
	}
	return id, nil
}

// Record is one stored row.
type Record struct {
	ID             int64
	SessionID      *string
	Kind           Kind
	Payload        json.RawMessage
	RationaleID    *string
	PromptBundleID *string
	PolicyHash     *string
	OccurredAt     int64
}

// Decode unmarshals r's payload into P, refusing a row of another kind.
// For kinds with several payload types (escalation_recommended,
// start_attempt_stopped) the caller picks the variant it expects.
func Decode[P Payload](r Record) (P, error) {
	var p P
	if p.Kind() != r.Kind {
		return p, fmt.Errorf("decode audit event %d: kind %s, not %s", r.ID, r.Kind, p.Kind())
	}
	if err := json.Unmarshal(r.Payload, &p); err != nil {
		return p, fmt.Errorf("decode audit event %d (%s): %w", r.ID, r.Kind, err)
	}
	return p, nil
}

const recordColumns = `id, session_id, kind, payload_json::text, rationale_id, prompt_bundle_id, policy_hash, occurred_at`

func scanRecord(row pgx.Row) (Record, error) {
	var (
		r       Record
		kind    string
		payload string
	)
	if err := row.Scan(&r.ID, &r.SessionID, &kind, &payload, &r.RationaleID, &r.PromptBundleID, &r.PolicyHash, &r.OccurredAt); err != nil {
		return Record{}, err
	}
	r.Kind, r.Payload = Kind(kind), json.RawMessage(payload)
	return r, nil
}

func collect(what string, rows pgx.Rows, err error) ([]Record, error) {
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Record, error) { return scanRecord(r) })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

func kindStrings(kinds []Kind) []string {
	out := make([]string, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, string(k))
	}
	return out
}

// Get returns one row.
func Get(ctx context.Context, db DB, id int64) (Record, error) {
	r, err := scanRecord(db.QueryRow(ctx, `SELECT `+recordColumns+` FROM mediation_events WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Record{}, fmt.Errorf("get audit event %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Record{}, fmt.Errorf("get audit event %d: %w", id, err)
	}
	return r, nil
}

// Trail returns the audit trail of one dispute, oldest first: the rows of
// its sessions (sessionIDs, which the caller learns from the sessions'
// owner) and its dispute-scoped rows (session_id NULL, payload dispute_id =
// disputeID). Daemon-scoped rows are never part of a trail.
func Trail(ctx context.Context, db DB, disputeID string, sessionIDs []string) ([]Record, error) {
	if sessionIDs == nil {
		sessionIDs = []string{}
	}
	rows, err := db.Query(ctx, `
SELECT `+recordColumns+` FROM mediation_events
WHERE session_id = ANY($2::text[]) OR (session_id IS NULL AND payload_json ->> 'dispute_id' = $1)
ORDER BY id`, disputeID, sessionIDs)
	return collect("audit trail of dispute "+disputeID, rows, err)
}

// SessionEvents returns the rows of one session, oldest first, of the
// given kinds (all kinds when none are given).
func SessionEvents(ctx context.Context, db DB, sessionID string, kinds ...Kind) ([]Record, error) {
	rows, err := db.Query(ctx, `
SELECT `+recordColumns+` FROM mediation_events
WHERE session_id = $1 AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
ORDER BY id`, sessionID, kindStrings(kinds))
	return collect("audit events of session "+sessionID, rows, err)
}

// DisputeScoped returns the dispute-scoped rows of one dispute, oldest
// first, of the given kinds (all kinds when none are given).
func DisputeScoped(ctx context.Context, db DB, disputeID string, kinds ...Kind) ([]Record, error) {
	rows, err := db.Query(ctx, `
SELECT `+recordColumns+` FROM mediation_events
WHERE session_id IS NULL AND payload_json ->> 'dispute_id' = $1
  AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[]))
ORDER BY id`, disputeID, kindStrings(kinds))
	return collect("dispute-scoped audit events of "+disputeID, rows, err)
}

// HasDisputeScoped reports whether the dispute has a dispute-scoped row of
// one of the kinds (of any kind when none are given).
func HasDisputeScoped(ctx context.Context, db DB, disputeID string, kinds ...Kind) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM mediation_events
               WHERE session_id IS NULL AND payload_json ->> 'dispute_id' = $1
                 AND (cardinality($2::text[]) = 0 OR kind = ANY($2::text[])))`, disputeID, kindStrings(kinds)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("probe dispute-scoped audit events of %s: %w", disputeID, err)
	}
	return ok, nil
}

// HasForHandoff reports whether a row of kind already records the handoff
// whose handoff_prepared row is handoffEventID (payload handoff_event_id):
// the phase 4 writers' dedup probe.
func HasForHandoff(ctx context.Context, db DB, kind Kind, handoffEventID int64) (bool, error) {
	var ok bool
	err := db.QueryRow(ctx, `
SELECT EXISTS (SELECT 1 FROM mediation_events
               WHERE payload_json ? 'handoff_event_id' AND (payload_json ->> 'handoff_event_id')::bigint = $1 AND kind = $2)`,
		handoffEventID, string(kind)).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("probe %s audit of handoff event %d: %w", kind, handoffEventID, err)
	}
	return ok, nil
}

// ForHandoff returns every row that records the handoff of handoffEventID
// (payload handoff_event_id), oldest first; the handoff_prepared row itself
// is Get(handoffEventID).
func ForHandoff(ctx context.Context, db DB, handoffEventID int64) ([]Record, error) {
	rows, err := db.Query(ctx, `
SELECT `+recordColumns+` FROM mediation_events
WHERE payload_json ? 'handoff_event_id' AND (payload_json ->> 'handoff_event_id')::bigint = $1
ORDER BY id`, handoffEventID)
	return collect(fmt.Sprintf("audit events of handoff event %d", handoffEventID), rows, err)
}

// Package notiflog is the contract of the solver-notification log, the
// Postgres table notifications (migration 00001): one row per attempted
// recipient of every DM Serbero sends a solver, written by intakesvc (the
// dispute notifications), mediationsvc (summaries, escalations, resolution
// reports) and escalationsvc (escalation handoffs). It is the only code
// that names the table in SQL. The rules are in
// docs/architecture.md#the-solver-notification-log:
//
//   - A row records one attempt to DM one solver: sent (a relay accepted
//     it) or failed (with the error text, for operators). Writers record
//     in the transaction that records what the DM was about.
//   - solver_pubkey is the pubkey as configured, verbatim; sent_at is the
//     writer's clock in unix seconds.
//   - notif_type says which DM it was (the Type constants); the vocabulary
//     is the reference daemon's plus escalation_handoff.
//   - The table references disputes: rows for an unknown dispute are
//     refused by the foreign key.
package notiflog

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Type is the notif_type column.
type Type string

// The notification types.
const (
	// TypeInitial is the first DM about a new dispute (intakesvc).
	TypeInitial Type = "initial"
	// TypeRenotification repeats it while nobody took the dispute
	// (intakesvc).
	TypeRenotification Type = "re-notification"
	// TypeAssignment says the dispute was taken (intakesvc).
	TypeAssignment Type = "assignment"
	// TypeEscalation is defined by the reference and never written.
	TypeEscalation Type = "escalation"
	// TypeEscalationHandoff is the escalation_handoff/v1 DM (escalationsvc;
	// the reference wrote mediation_escalation_recommended here).
	TypeEscalationHandoff Type = "escalation_handoff"
	// TypeMediationSummary is a mediation summary (mediationsvc).
	TypeMediationSummary Type = "mediation_summary"
	// TypeMediationEscalationRecommended is the compact phase 3 escalation
	// DM (mediationsvc).
	TypeMediationEscalationRecommended Type = "mediation_escalation_recommended"
	// TypeMediationResolutionReport is the final resolution report
	// (mediationsvc).
	TypeMediationResolutionReport Type = "mediation_resolution_report"
)

// Types returns every type, in the order above.
func Types() []Type {
	return []Type{TypeInitial, TypeRenotification, TypeAssignment, TypeEscalation, TypeEscalationHandoff,
		TypeMediationSummary, TypeMediationEscalationRecommended, TypeMediationResolutionReport}
}

// Status is the status column.
type Status string

// The statuses.
const (
	StatusSent   Status = "sent"
	StatusFailed Status = "failed"
)

// DB is what the functions run on: a pool, a connection or a transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// ErrInvalidEntry means an entry was refused before anything was written.
var ErrInvalidEntry = errors.New("invalid notification entry")

// Entry is one row to record.
type Entry struct {
	// ID, when non-zero, is an id drawn with ReserveIDs (for a writer that
	// must know the id before the row exists); zero lets the table draw it.
	ID           int64
	DisputeID    string
	SolverPubkey string
	// SentAt is unix seconds.
	SentAt int64
	Status Status
	// Error is the failure text (error_message); it must be empty when
	// Status is StatusSent and is stored as NULL then.
	Error string
	Type  Type
}

func (e Entry) check() error {
	switch {
	case e.DisputeID == "":
		return fmt.Errorf("%w: dispute_id is required", ErrInvalidEntry)
	case e.SentAt <= 0:
		return fmt.Errorf("%w: sent_at is required", ErrInvalidEntry)
	case !slices.Contains(Types(), e.Type):
		return fmt.Errorf("%w: unknown notif_type %q", ErrInvalidEntry, e.Type)
	case e.Status == StatusSent && e.Error != "":
		return fmt.Errorf("%w: a sent notification has no error", ErrInvalidEntry)
	case e.Status != StatusSent && e.Status != StatusFailed:
		return fmt.Errorf("%w: unknown status %q", ErrInvalidEntry, e.Status)
	}
	return nil
}

// Record writes one entry and returns its id.
func Record(ctx context.Context, db DB, e Entry) (int64, error) {
	ids, err := RecordAll(ctx, db, []Entry{e})
	if err != nil {
		return 0, err
	}
	return ids[0], nil
}

// RecordAll writes entries in one statement and returns their ids in
// entries' order (ids grow in that order for table-drawn ids). Either every
// entry is written or none is.
func RecordAll(ctx context.Context, db DB, entries []Entry) ([]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	var (
		ids                                      = make([]*int64, len(entries))
		disputes, solvers, statuses, errs, types = make([]string, len(entries)), make([]string, len(entries)), make([]string, len(entries)), make([]*string, len(entries)), make([]string, len(entries))
		sentAt                                   = make([]int64, len(entries))
	)
	for i, e := range entries {
		if err := e.check(); err != nil {
			return nil, fmt.Errorf("record notification %d of %d: %w", i+1, len(entries), err)
		}
		if e.ID != 0 {
			ids[i] = &e.ID
		}
		disputes[i], solvers[i], sentAt[i], statuses[i], types[i] = e.DisputeID, e.SolverPubkey, e.SentAt, string(e.Status), string(e.Type)
		if e.Status == StatusFailed {
			errs[i] = &e.Error
		}
	}
	// Table-drawn ids are taken in ordinality order (nextval per row, in
	// the SELECT's order), so they grow in entries' order.
	rows, err := db.Query(ctx, `
WITH input AS MATERIALIZED (
    SELECT COALESCE(i.id, nextval(pg_get_serial_sequence('notifications', 'id'))) AS id,
           i.dispute_id, i.solver_pubkey, i.sent_at, i.status, i.error_message, i.notif_type, i.ord
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
         WITH ORDINALITY AS i(id, dispute_id, solver_pubkey, sent_at, status, error_message, notif_type, ord)
    ORDER BY i.ord
), ins AS (
    INSERT INTO notifications (id, dispute_id, solver_pubkey, sent_at, status, error_message, notif_type)
    OVERRIDING SYSTEM VALUE
    SELECT id, dispute_id, solver_pubkey, sent_at, status, error_message, notif_type FROM input
    RETURNING id
)
SELECT input.id FROM input JOIN ins ON ins.id = input.id ORDER BY input.ord`,
		ids, disputes, solvers, sentAt, statuses, errs, types)
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	if len(out) != len(entries) {
		return nil, fmt.Errorf("record notifications: %d of %d recorded", len(out), len(entries))
	}
	return out, nil
}

// ReserveIDs draws n ids for entries recorded later (Entry.ID), for a
// writer that stores a row's id elsewhere in the same transaction before
// the row exists. Unused ids are simply gaps.
func ReserveIDs(ctx context.Context, db DB, n int) ([]int64, error) {
	if n <= 0 {
		return nil, nil
	}
	rows, err := db.Query(ctx, `SELECT nextval(pg_get_serial_sequence('notifications', 'id')) FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("reserve notification ids: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("reserve notification ids: %w", err)
	}
	return out, nil
}

// Notification is one stored row.
type Notification struct {
	ID           int64
	DisputeID    string
	SolverPubkey string
	SentAt       int64
	Status       Status
	// Error is the error_message ("" for NULL).
	Error string
	Type  Type
}

// ByDispute returns the notifications of one dispute, oldest first (by
// id), of the given types (all types when none are given).
func ByDispute(ctx context.Context, db DB, disputeID string, types ...Type) ([]Notification, error) {
	ts := make([]string, 0, len(types))
	for _, t := range types {
		ts = append(ts, string(t))
	}
	rows, err := db.Query(ctx, `
SELECT id, dispute_id, solver_pubkey, sent_at, status, COALESCE(error_message, ''), notif_type
FROM notifications
WHERE dispute_id = $1 AND (cardinality($2::text[]) = 0 OR notif_type = ANY($2::text[]))
ORDER BY id`, disputeID, ts)
	if err != nil {
		return nil, fmt.Errorf("notifications of dispute %s: %w", disputeID, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Notification, error) {
		var (
			n             Notification
			status, ntype string
		)
		err := r.Scan(&n.ID, &n.DisputeID, &n.SolverPubkey, &n.SentAt, &status, &n.Error, &ntype)
		n.Status, n.Type = Status(status), Type(ntype)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("notifications of dispute %s: %w", disputeID, err)
	}
	return out, nil
}

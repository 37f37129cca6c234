package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Rationale operations.
const (
	OperationClassify  = "classify"
	OperationSummarize = "summarize"
)

// ErrRationaleBound is returned when binding an occurrence that already
// belongs to another session (or dispute).
var ErrRationaleBound = errors.New("rationale occurrence is bound elsewhere")

// RationaleOccurrence is one time a rationale was produced, with its
// provenance. The text is passed separately and stored once per distinct
// text.
type RationaleOccurrence struct {
	// ID is the occurrence row id (set by RecordRationale).
	ID int64
	// RationaleID is the lowercase hex SHA-256 of the text (set by
	// RecordRationale).
	RationaleID string
	// DisputeID is the dispute (required).
	DisputeID string
	// SessionID is the session, "" while dispute-scoped.
	SessionID string
	// Operation is OperationClassify or OperationSummarize.
	Operation string
	// Provider and Model are [reasoning].provider and .model.
	Provider, Model string
	// PromptBundleID and PolicyHash pin the bundle.
	PromptBundleID, PolicyHash string
	// GeneratedAt is Unix seconds.
	GeneratedAt int64
	// Key makes the write idempotent: recording the same key again returns
	// the first row. Empty: derived from every other field, so an
	// identical retry is a no-op and any difference is a new occurrence.
	Key string
}

func (o RationaleOccurrence) key(rationaleID string) string {
	if o.Key != "" {
		return o.Key
	}
	h := sha256.New()
	for _, f := range []string{rationaleID, o.DisputeID, o.SessionID, o.Operation, o.Provider, o.Model,
		o.PromptBundleID, o.PolicyHash, strconv.FormatInt(o.GeneratedAt, 10)} {
		h.Write([]byte(f))
		h.Write([]byte{0})
	}
	return "derived:" + hex.EncodeToString(h.Sum(nil))
}

// RationaleID is the lowercase hex SHA-256 of text.
func RationaleID(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// RecordRationale stores text (once per distinct text) and records this
// occurrence (once per key). The same text in two sessions, or the empty
// text, is two occurrences and never an error. It returns the stored
// occurrence (the first one written under the same key).
//
// db is the caller's transaction (or pool); nil runs both writes in one
// transaction of the store's own.
func (s *Store) RecordRationale(ctx context.Context, db DB, text string, o RationaleOccurrence) (RationaleOccurrence, error) {
	if db == nil {
		var out RationaleOccurrence
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var err error
			out, err = s.RecordRationale(ctx, tx, text, o)
			return err
		})
		return out, err
	}
	if strings.TrimSpace(o.DisputeID) == "" {
		return RationaleOccurrence{}, errors.New("record rationale: dispute id is required")
	}
	if o.Operation != OperationClassify && o.Operation != OperationSummarize {
		return RationaleOccurrence{}, fmt.Errorf("record rationale: unknown operation %q", o.Operation)
	}
	id := RationaleID(text)
	if _, err := db.Exec(ctx, `
INSERT INTO reasoning_rationales (rationale_id, rationale_text, generated_at) VALUES ($1, $2, $3)
ON CONFLICT (rationale_id) DO NOTHING`, id, text, o.GeneratedAt); err != nil {
		return RationaleOccurrence{}, fmt.Errorf("record rationale: %w", err)
	}
	key := o.key(id)
	row := db.QueryRow(ctx, `
WITH ins AS (
    INSERT INTO reasoning_rationale_occurrences
        (rationale_id, dispute_id, session_id, operation, provider, model, prompt_bundle_id, policy_hash, generated_at, occurrence_key)
    VALUES ($1, $2, NULLIF($3, ''), $4, $5, $6, $7, $8, $9, $10)
    ON CONFLICT (occurrence_key) DO NOTHING
    RETURNING `+occurrenceColumns+`
)
SELECT `+occurrenceColumns+` FROM ins
UNION ALL
SELECT `+occurrenceColumns+` FROM reasoning_rationale_occurrences WHERE occurrence_key = $10
LIMIT 1`,
		id, o.DisputeID, o.SessionID, o.Operation, o.Provider, o.Model, o.PromptBundleID, o.PolicyHash, o.GeneratedAt, key)
	got, err := scanOccurrence(row)
	if errors.Is(err, pgx.ErrNoRows) {
		// A concurrent writer of the same key committed after this
		// statement's snapshot: read it now.
		got, err = scanOccurrence(db.QueryRow(ctx, `SELECT `+occurrenceColumns+` FROM reasoning_rationale_occurrences WHERE occurrence_key = $1`, key))
	}
	if err != nil {
		return RationaleOccurrence{}, fmt.Errorf("record rationale occurrence: %w", err)
	}
	return got, nil
}

const occurrenceColumns = `id, rationale_id, dispute_id, COALESCE(session_id, '') AS session_id, operation, provider, model, prompt_bundle_id, policy_hash, generated_at, occurrence_key`

func scanOccurrence(row pgx.Row) (RationaleOccurrence, error) {
	var o RationaleOccurrence
	err := row.Scan(&o.ID, &o.RationaleID, &o.DisputeID, &o.SessionID, &o.Operation, &o.Provider, &o.Model,
		&o.PromptBundleID, &o.PolicyHash, &o.GeneratedAt, &o.Key)
	return o, err
}

// BindRationale binds a dispute-scoped occurrence to the session it
// opened. Binding it to the same session again is a no-op; an occurrence
// of another dispute, or already bound to another session, is
// ErrRationaleBound; an unknown id is ErrNotFound.
func (s *Store) BindRationale(ctx context.Context, db DB, occurrenceID int64, disputeID, sessionID string) error {
	if db == nil {
		db = s.pool
	}
	var bound string
	err := db.QueryRow(ctx, `
WITH upd AS (
    UPDATE reasoning_rationale_occurrences SET session_id = $2
    WHERE id = $1 AND dispute_id = $3 AND session_id IS NULL
    RETURNING session_id
)
SELECT session_id FROM (
    SELECT session_id, 0 AS pick FROM upd
    UNION ALL
    SELECT COALESCE(session_id, ''), 1 FROM reasoning_rationale_occurrences WHERE id = $1 AND dispute_id = $3
) bound ORDER BY pick LIMIT 1`, occurrenceID, sessionID, disputeID).Scan(&bound)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		var exists bool
		if err := db.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM reasoning_rationale_occurrences WHERE id = $1)`, occurrenceID).Scan(&exists); err != nil {
			return fmt.Errorf("bind rationale: %w", err)
		}
		if exists {
			return fmt.Errorf("bind rationale occurrence %d to session %s: %w", occurrenceID, sessionID, ErrRationaleBound)
		}
		return fmt.Errorf("bind rationale occurrence %d: %w", occurrenceID, ErrNotFound)
	case err != nil:
		return fmt.Errorf("bind rationale: %w", err)
	case bound != sessionID:
		return fmt.Errorf("bind rationale occurrence %d to session %s: %w", occurrenceID, sessionID, ErrRationaleBound)
	}
	return nil
}

// RationaleText returns a stored text by id (operator tooling only; never
// log it).
func (s *Store) RationaleText(ctx context.Context, rationaleID string) (string, error) {
	var text string
	err := s.pool.QueryRow(ctx, `SELECT rationale_text FROM reasoning_rationales WHERE rationale_id = $1`, rationaleID).Scan(&text)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	if err != nil {
		return "", fmt.Errorf("rationale text: %w", err)
	}
	return text, nil
}

// RationaleOccurrences lists the occurrences of a dispute (its dispute-
// and session-scoped ones), oldest first.
func (s *Store) RationaleOccurrences(ctx context.Context, disputeID string) ([]RationaleOccurrence, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+occurrenceColumns+` FROM reasoning_rationale_occurrences WHERE dispute_id = $1 ORDER BY id`, disputeID)
	if err != nil {
		return nil, fmt.Errorf("rationale occurrences: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RationaleOccurrence, error) { return scanOccurrence(r) })
	if err != nil {
		return nil, fmt.Errorf("rationale occurrences: %w", err)
	}
	return out, nil
}

// Package store is mediationsvc's SQL: it reads mediation_sessions and
// mediation_messages (read.go; the audit trail is read through pkg/audit),
// and owns the reasoning tables (the rationale store with its occurrences,
// and the prompt bundles kept by hash). It takes decisions as inputs and
// never makes them.
package store

import (
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound is returned when a session does not exist.
var ErrNotFound = errors.New("not found")

// Store reads and writes the mediation tables.
type Store struct{ pool *pgxpool.Pool }

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Package store keeps authsvc's state in Postgres: the one authsvc_state
// row (written under a row lock, NOTIFY authsvc_state with the new version
// in the same transaction), the loop lease (authsvc_lease, database time, a
// term that fences the loop's writes), and the auth_retry_* audit rows,
// appended through pkg/audit in the transaction of the state they record.
// It only runs SQL: every decision comes in from the caller (see
// docs/authorization.md).
package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

// Channel is the NOTIFY channel; the payload is the new version (listeners
// treat it as a hint and re-read the version).
const Channel = "authsvc_state"

// ErrNotLeader is returned by a fenced Apply when the caller's lease term
// is no longer current.
var ErrNotLeader = errors.New("authsvc: lease lost")

// Store is the Postgres side of authsvc.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool.
func New(pool *pgxpool.Pool) *Store { return &Store{pool: pool} }

// Fence names a lease term; writes under it succeed only while it is held.
type Fence struct {
	// Holder is the replica's lease identity.
	Holder string
	// Term is the lease term it acquired.
	Term int64
}

const selectState = `SELECT state, since, attempt, cumulative_wait_ms, next_attempt_at, last_attempt_at, last_error,
	evidence_kind, evidence_summary, evidence_observed_at, evidence_dispute_id,
	observation_kind, observation_summary, observation_observed_at, observation_dispute_id,
	probe_id, probe_granted_at, probe_deadline, probe_dispute_id, probe_claimer_id, probe_claimed_at, version
	FROM authsvc_state WHERE id = 1`

// Load reads the state.
func (s *Store) Load(ctx context.Context) (revalidation.State, error) {
	st, err := scanState(s.pool.QueryRow(ctx, selectState))
	if err != nil {
		return revalidation.State{}, fmt.Errorf("load authsvc state: %w", err)
	}
	return st, nil
}

// Version reads only the state's version (the cheap periodic check).
func (s *Store) Version(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT version FROM authsvc_state WHERE id = 1`).Scan(&v); err != nil {
		return 0, fmt.Errorf("read authsvc state version: %w", err)
	}
	return v, nil
}

func scanState(row pgx.Row) (revalidation.State, error) {
	var (
		st                                     revalidation.State
		state, evKind, obsKind                 string
		cumMS                                  int64
		next, last, evAt, obsAt                *time.Time
		probeID, probeDispute, probeClaimer    *string
		probeGranted, probeDeadline, probeClmd *time.Time
	)
	err := row.Scan(&state, &st.Since, &st.Attempt, &cumMS, &next, &last, &st.LastError,
		&evKind, &st.Evidence.Summary, &evAt, &st.Evidence.DisputeID,
		&obsKind, &st.Observation.Summary, &obsAt, &st.Observation.DisputeID,
		&probeID, &probeGranted, &probeDeadline, &probeDispute, &probeClaimer, &probeClmd, &st.Version)
	if err != nil {
		return st, err
	}
	if st.Status, err = revalidation.ParseStatus(state); err != nil {
		return st, err
	}
	if st.Evidence.Kind, err = revalidation.ParseEvidenceKind(evKind); err != nil {
		return st, err
	}
	if st.Observation.Kind, err = revalidation.ParseEvidenceKind(obsKind); err != nil {
		return st, err
	}
	st.Since = st.Since.UTC()
	st.CumulativeWait = time.Duration(cumMS) * time.Millisecond
	st.NextAttemptAt = deref(next)
	st.LastAttemptAt = deref(last)
	st.Evidence.ObservedAt = deref(evAt)
	st.Observation.ObservedAt = deref(obsAt)
	if probeID != nil {
		st.Probe = revalidation.Probe{
			ID: *probeID, GrantedAt: deref(probeGranted), Deadline: deref(probeDeadline), ClaimedAt: deref(probeClmd),
		}
		if probeDispute != nil {
			st.Probe.DisputeID = *probeDispute
		}
		if probeClaimer != nil {
			st.Probe.ClaimerID = *probeClaimer
		}
	}
	return st, nil
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

// ts maps the zero time to NULL.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// Applied is what Apply did.
type Applied struct {
	// Result is the machine's result (its State is what was committed).
	Result revalidation.Result
	// AuditErrors are the audit rows that could not be written; the state
	// was committed anyway.
	AuditErrors []error
}

// Apply locks the state row, runs step on it, and when the result asks for
// it writes the new state, the audit rows (each in its own savepoint: a
// failed audit write is logged by the caller and never blocks the state)
// and NOTIFY, all in one transaction. With a non-nil fence the caller's
// lease term must still be current (the lease row is share-locked, so it
// cannot move before commit); otherwise ErrNotLeader.
func (s *Store) Apply(ctx context.Context, fence *Fence, now time.Time, step func(revalidation.State) revalidation.Result) (Applied, error) {
	var out Applied
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if fence != nil {
			var ok bool
			err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM authsvc_lease
				WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > now() FOR SHARE)`,
				fence.Holder, fence.Term).Scan(&ok)
			if err != nil {
				return fmt.Errorf("check lease: %w", err)
			}
			if !ok {
				return ErrNotLeader
			}
		}
		cur, err := scanState(tx.QueryRow(ctx, selectState+" FOR UPDATE"))
		if err != nil {
			return fmt.Errorf("lock authsvc state: %w", err)
		}
		res := step(cur)
		out.Result = res
		if res.Err != nil || !res.Persist {
			return nil //nolint:nilerr // a refused step commits nothing; its error travels in out.Result
		}
		for _, p := range res.Audits {
			if err := appendAudit(ctx, tx, p, now); err != nil {
				out.AuditErrors = append(out.AuditErrors, fmt.Errorf("write %s audit row: %w", p.Kind(), err))
			}
		}
		if err := writeState(ctx, tx, res.State); err != nil {
			return err
		}
		if res.Changed {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, Channel, strconv.FormatInt(res.State.Version, 10)); err != nil {
				return fmt.Errorf("notify %s: %w", Channel, err)
			}
		}
		return nil
	})
	if err != nil {
		return Applied{}, err
	}
	return out, nil
}

// appendAudit appends one daemon-scoped audit row inside a savepoint, so
// its failure rolls back only itself.
func appendAudit(ctx context.Context, tx pgx.Tx, p audit.Payload, now time.Time) error {
	return pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		_, err := audit.Append(ctx, sp, audit.Event{Payload: p, OccurredAt: now.Unix()})
		return err
	})
}

func writeState(ctx context.Context, tx pgx.Tx, st revalidation.State) error {
	_, err := tx.Exec(ctx, `UPDATE authsvc_state SET
		state = $1, since = $2, attempt = $3, cumulative_wait_ms = $4, next_attempt_at = $5, last_attempt_at = $6,
		last_error = $7, evidence_kind = $8, evidence_summary = $9, evidence_observed_at = $10, evidence_dispute_id = $11,
		observation_kind = $12, observation_summary = $13, observation_observed_at = $14, observation_dispute_id = $15,
		probe_id = $16, probe_granted_at = $17, probe_deadline = $18, probe_dispute_id = $19, probe_claimer_id = $20,
		probe_claimed_at = $21, version = $22, updated_at = now()
		WHERE id = 1`,
		st.Status.String(), st.Since, st.Attempt, st.CumulativeWait.Milliseconds(), ts(st.NextAttemptAt), ts(st.LastAttemptAt),
		st.LastError, kindName(st.Evidence.Kind), st.Evidence.Summary, ts(st.Evidence.ObservedAt), st.Evidence.DisputeID,
		kindName(st.Observation.Kind), st.Observation.Summary, ts(st.Observation.ObservedAt), st.Observation.DisputeID,
		nullStr(st.Probe.ID), ts(st.Probe.GrantedAt), ts(st.Probe.Deadline), nullStr(st.Probe.DisputeID), nullStr(st.Probe.ClaimerID),
		ts(st.Probe.ClaimedAt), st.Version)
	if err != nil {
		return fmt.Errorf("write authsvc state: %w", err)
	}
	return nil
}

func kindName(k revalidation.EvidenceKind) string {
	if k == 0 {
		return revalidation.EvidenceNone.String()
	}
	return k.String()
}

// AcquireLease takes or renews the loop lease for holder until now()+ttl
// (database time). It returns the term and whether holder holds it. The
// term increases whenever the lease changes hands or is re-taken after
// lapsing, so a holder that lost it for a moment gets a new term.
func (s *Store) AcquireLease(ctx context.Context, holder string, ttl time.Duration) (int64, bool, error) {
	var term int64
	err := s.pool.QueryRow(ctx, `UPDATE authsvc_lease SET
			term        = CASE WHEN holder = $1 AND expires_at > now() THEN term ELSE term + 1 END,
			acquired_at = CASE WHEN holder = $1 AND expires_at > now() THEN acquired_at ELSE now() END,
			holder      = $1,
			expires_at  = now() + make_interval(secs => $2)
		WHERE id = 1 AND (holder = $1 OR expires_at <= now())
		RETURNING term`, holder, ttl.Seconds()).Scan(&term)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("acquire authsvc lease: %w", err)
	}
	return term, true, nil
}

// RenewLease extends holder's lease of term; false when it was lost.
func (s *Store) RenewLease(ctx context.Context, f Fence, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE authsvc_lease SET expires_at = now() + make_interval(secs => $3)
		WHERE id = 1 AND holder = $1 AND term = $2 AND expires_at > now()`, f.Holder, f.Term, ttl.Seconds())
	if err != nil {
		return false, fmt.Errorf("renew authsvc lease: %w", err)
	}
	return tag.RowsAffected() == 1, nil
}

// ReleaseLease gives the lease up at once (a clean stop), so another
// replica takes the loop over without waiting for it to lapse.
func (s *Store) ReleaseLease(ctx context.Context, f Fence) error {
	_, err := s.pool.Exec(ctx, `UPDATE authsvc_lease SET holder = '', expires_at = '-infinity'
		WHERE id = 1 AND holder = $1 AND term = $2`, f.Holder, f.Term)
	if err != nil {
		return fmt.Errorf("release authsvc lease: %w", err)
	}
	return nil
}

// Lease is the lease row as stored.
type Lease struct {
	// Holder is the holder's identity ('' when released).
	Holder string
	// Term is the current term.
	Term int64
	// Live reports whether it has not expired.
	Live bool
}

// CurrentLease reads the lease row.
func (s *Store) CurrentLease(ctx context.Context) (Lease, error) {
	var l Lease
	err := s.pool.QueryRow(ctx, `SELECT holder, term, expires_at > now() FROM authsvc_lease WHERE id = 1`).
		Scan(&l.Holder, &l.Term, &l.Live)
	if err != nil {
		return l, fmt.Errorf("read authsvc lease: %w", err)
	}
	return l, nil
}

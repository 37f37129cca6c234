package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/message"
	"github.com/serbero/serbero/services/intakesvc/internal/route"
)

// ApplyResult says what ApplyRevision did.
type ApplyResult struct {
	// Decision is the routing decision that was carried out.
	Decision route.Decision
	// Dispute is the dispute after the revision (nil when nothing is
	// recorded).
	Dispute *Dispute
	// From is the state before the transition, when there was one.
	From lifecycle.State
	// JobIDs are the DMs queued (outbox rows), in solver order.
	JobIDs []int64
	// Claimed are the queued DMs leased to the caller in the same
	// transaction (ApplyRevisionClaim), ready to send: the initial DMs of
	// a new dispute (the hot path). Other DMs (JobIDs not in Claimed) are
	// claimed as before (ClaimJob): they may wait behind earlier ones.
	Claimed []Job
	// SessionsClosed are the mediation sessions closed by a resolution.
	SessionsClosed []string
}

// ApplyRevision persists the effect of one verified revision and advances
// the intake cursor to rev.Cursor, in one transaction. solvers are the
// configured solver pubkeys, in config order (empty: nothing is queued).
// Handlers are serialised per dispute across replicas by an advisory lock.
func (s *Store) ApplyRevision(ctx context.Context, rev event.Revision, solvers []string, now time.Time) (ApplyResult, error) {
	return s.ApplyRevisionClaim(ctx, rev, solvers, now, 0)
}

// ApplyRevisionClaim is ApplyRevision that also leases a new dispute's
// initial DMs for lease (when > 0), as ClaimJob would right after the
// commit: the caller sends them without claiming them one by one. A caller
// that dies leaves them to any replica once the lease expires.
func (s *Store) ApplyRevisionClaim(ctx context.Context, rev event.Revision, solvers []string, now time.Time,
	lease time.Duration) (ApplyResult, error) {
	var res ApplyResult
	err := s.inTxTail(ctx, func(tx pgx.Tx) (int64, []pendingChange, error) {
		res = ApplyResult{}
		// One round trip: the per-dispute lock, then the row.
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "intakesvc/dispute/"+rev.DisputeID)
		b.Queue(`SELECT `+disputeCols+` FROM disputes WHERE dispute_id = $1 FOR NO KEY UPDATE`, rev.DisputeID)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			br.Close()
			return 0, nil, fmt.Errorf("lock dispute: %w", err)
		}
		var cur *Dispute
		d, err := scanDispute(br.QueryRow())
		switch {
		case err == nil:
			cur = &d
		case !errors.Is(err, pgx.ErrNoRows):
			br.Close()
			return 0, nil, fmt.Errorf("read dispute: %w", err)
		}
		if err := br.Close(); err != nil {
			return 0, nil, fmt.Errorf("read dispute: %w", err)
		}
		var rc *route.Current
		if cur != nil {
			rc = &route.Current{State: cur.LifecycleState, EventID: cur.EventID, EventTimestamp: cur.EventTimestamp}
			if cur.NewestEventID != nil && cur.NewestCreatedAt != nil {
				rc.NewestEventID, rc.NewestCreatedAt = *cur.NewestEventID, *cur.NewestCreatedAt
			}
		}
		dec := route.Decide(rc, rev)
		res.Decision = dec
		unix := now.Unix()
		var changes []pendingChange

		if dec.Insert {
			d := Dispute{
				DisputeID: rev.DisputeID, EventID: rev.EventID, MostroPubkey: rev.Pubkey,
				InitiatorRole: rev.Initiator, DisputeStatus: string(rev.Status), EventTimestamp: rev.CreatedAt,
				DetectedAt: unix, LifecycleState: lifecycle.New,
				NewestEventID: ptr(rev.EventID), NewestCreatedAt: ptr(rev.CreatedAt),
			}
			if rev.OpenedAt > 0 {
				d.OpenedAt = ptr(rev.OpenedAt)
			}
			initial := dec.Notify == message.TypeInitial && len(solvers) > 0
			if initial {
				d.NotifyClaimedAt = ptr(unix) // the initial batch, queued below
			}
			// The row and its initial DMs in one round trip (in order: the
			// jobs reference the row).
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role,
				dispute_status, event_timestamp, detected_at, lifecycle_state, opened_at, newest_event_id, newest_created_at,
				notify_claimed_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 'new', $8, $9, $10, $11) ON CONFLICT (dispute_id) DO NOTHING`,
				d.DisputeID, d.EventID, d.MostroPubkey, d.InitiatorRole, d.DisputeStatus, d.EventTimestamp,
				d.DetectedAt, d.OpenedAt, d.NewestEventID, d.NewestCreatedAt, d.NotifyClaimedAt)
			var nb newBatch
			if initial {
				body := message.Initial(d.DisputeID, d.InitiatorRole, d.EventTimestamp)
				// A new dispute has no earlier DM: each solver's is due now.
				nb = newBatch{disputeID: d.DisputeID, notifType: message.TypeInitial, body: &body, solvers: solvers,
					batchAt: unix, lease: lease, state: d.LifecycleState}
				nb.queue(b)
			}
			br := tx.SendBatch(ctx, b)
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return 0, nil, fmt.Errorf("insert dispute: %w", err)
			}
			if tag.RowsAffected() == 0 {
				// Impossible under the advisory lock; never notify twice.
				br.Close()
				return 0, nil, fmt.Errorf("insert dispute %s: row appeared under the dispute lock", rev.DisputeID)
			}
			if initial {
				if res.JobIDs, res.Claimed, err = nb.read(br); err != nil {
					br.Close()
					return 0, nil, fmt.Errorf("queue initial notifications: %w", err)
				}
			}
			if err := br.Close(); err != nil {
				return 0, nil, fmt.Errorf("insert dispute: %w", err)
			}
			changes = append(changes, pendingChange{kind: ChangeDetected, snapshot: d})
			cur = &d
		} else if dec.Track {
			cur.NewestEventID, cur.NewestCreatedAt = ptr(rev.EventID), ptr(rev.CreatedAt)
			if dec.SetStatus {
				cur.DisputeStatus = string(rev.Status)
			}
			if cur.OpenedAt == nil && rev.OpenedAt > 0 {
				cur.OpenedAt = ptr(rev.OpenedAt)
			}
			if _, err := tx.Exec(ctx, `UPDATE disputes SET newest_event_id = $2, newest_created_at = $3,
				dispute_status = $4, opened_at = $5 WHERE dispute_id = $1`,
				cur.DisputeID, cur.NewestEventID, cur.NewestCreatedAt, cur.DisputeStatus, cur.OpenedAt); err != nil {
				return 0, nil, fmt.Errorf("track revision: %w", err)
			}
		}

		if dec.To != "" {
			res.From = cur.LifecycleState
			tid, err := transition(ctx, tx, cur, dec.To, dec.Trigger, unix)
			if err != nil {
				return 0, nil, err
			}
			changes = append(changes, pendingChange{kind: ChangeTransitioned, transition: tid, snapshot: *cur})
		} else if dec.Track && !dec.Insert {
			changes = append(changes, pendingChange{kind: ChangeUpdated, snapshot: *cur})
		}

		if dec.CloseSessions {
			if res.SessionsClosed, err = closeSessions(ctx, tx, cur.DisputeID, rev, unix); err != nil {
				return 0, nil, err
			}
		}

		if dec.Notify != "" && len(solvers) > 0 && !(dec.Insert && dec.Notify == message.TypeInitial) {
			// Not leased: earlier DMs may be pending (the caller dispatches
			// the ids; ClaimJob checks).
			nb := newBatch{disputeID: cur.DisputeID, notifType: dec.Notify, solvers: solvers, batchAt: unix}
			switch dec.Notify {
			case message.TypeInitial:
				body := message.Initial(cur.DisputeID, cur.InitiatorRole, cur.EventTimestamp)
				nb.body = &body
			case message.TypeAssignment:
				nb.notBefore = cur.TakeIntentUntil
			}
			if res.JobIDs, res.Claimed, err = insertBatch(ctx, tx, nb); err != nil {
				return 0, nil, fmt.Errorf("queue %s notifications: %w", dec.Notify, err)
			}
		}

		if dec.Insert || dec.Track || dec.To != "" {
			res.Dispute = cur
		}
		return rev.Cursor, changes, nil
	})
	if err != nil {
		return ApplyResult{}, err
	}
	return res, nil
}

// newBatch is one notification batch to queue: one DM per solver.
type newBatch struct {
	disputeID, notifType string
	period               int64
	body                 *string // nil for assignments
	solvers              []string
	batchAt              int64
	notBefore            *int64 // unix s: defers the batch
	// lease > 0 leases every job to the caller (one per solver: the first
	// if a solver is listed twice), for a batch that is due now and has no
	// earlier DM pending (a new dispute's initial batch); state describes
	// the dispute for the leased jobs.
	lease time.Duration
	state lifecycle.State

	keys []string
}

// queue adds the insert to b.
func (nb *newBatch) queue(b *pgx.Batch) {
	nb.keys = make([]string, len(nb.solvers))
	claim := make([]bool, len(nb.solvers))
	seen := make(map[string]bool, len(nb.solvers))
	for i, sv := range nb.solvers {
		nb.keys[i] = message.IdempotencyKey(nb.notifType, nb.period, nb.disputeID, sv)
		claim[i] = nb.lease > 0 && nb.notBefore == nil && !seen[sv]
		seen[sv] = true
	}
	// (Claim flags come from the caller, not a NOT EXISTS here: Postgres
	// then keeps a generic plan instead of planning every call.)
	b.Queue(`
		WITH b AS (SELECT nextval('intake_notification_batch_seq') AS batch_id)
		INSERT INTO intake_notification_jobs
			(batch_id, dispute_id, solver_pubkey, notif_type, period, idempotency_key, body, batch_at, not_before,
			 claimed_until, attempts)
		SELECT b.batch_id, $1, u.solver, $2, $3, u.key, $4, $5, GREATEST(now(), to_timestamp($8)),
			CASE WHEN u.claim THEN now() + make_interval(secs => $9) END, CASE WHEN u.claim THEN 1 ELSE 0 END
		FROM b, unnest($6::text[], $7::text[], $10::bool[]) WITH ORDINALITY AS u(solver, key, claim, ord)
		ORDER BY u.ord
		RETURNING id, batch_id, idempotency_key, claimed_until IS NOT NULL`,
		nb.disputeID, nb.notifType, nb.period, nb.body, nb.batchAt, nb.solvers, nb.keys, nb.notBefore,
		nb.lease.Seconds(), claim)
}

// read reads the insert's result: the job ids in solver order and the
// jobs leased to the caller.
func (nb *newBatch) read(br pgx.BatchResults) ([]int64, []Job, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("insert jobs: %w", err)
	}
	type row struct {
		id, batch int64
		key       string
		claimed   bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.id, &x.batch, &x.key, &x.claimed)
		return x, err
	})
	if err != nil {
		return nil, nil, fmt.Errorf("insert jobs: %w", err)
	}
	// Ids follow the insert order (solver order); a solver listed twice
	// has two rows with one key, matched in that order.
	slices.SortFunc(got, func(a, b row) int { return cmp.Compare(a.id, b.id) })
	byKey := make(map[string][]row, len(got))
	for _, x := range got {
		byKey[x.key] = append(byKey[x.key], x)
	}
	ids := make([]int64, 0, len(nb.keys))
	var claimed []Job
	for i, k := range nb.keys {
		if len(byKey[k]) == 0 {
			return nil, nil, fmt.Errorf("insert jobs: no row for %s", k)
		}
		x := byKey[k][0]
		byKey[k] = byKey[k][1:]
		ids = append(ids, x.id)
		if x.claimed {
			claimed = append(claimed, Job{ID: x.id, BatchID: x.batch, DisputeID: nb.disputeID, SolverPubkey: nb.solvers[i],
				NotifType: nb.notifType, Period: nb.period, IdempotencyKey: k, Body: nb.body, BatchAt: nb.batchAt,
				Attempts: 1, State: nb.state})
		}
	}
	return ids, claimed, nil
}

// insertBatch queues one DM per solver (one batch) and returns the job ids
// in solver order, and the jobs leased to the caller (nb.lease > 0).
func insertBatch(ctx context.Context, tx pgx.Tx, nb newBatch) ([]int64, []Job, error) {
	b := &pgx.Batch{}
	nb.queue(b)
	br := tx.SendBatch(ctx, b)
	ids, claimed, err := nb.read(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("insert jobs: %w", cerr)
	}
	return ids, claimed, err
}

// closeSessions ends every live mediation session of a dispute resolved by
// Mostro (spec 10 §A6 step 4): superseded_by_human, then closed, each with
// its audit event carrying the session's pinned bundle and policy hash.
func closeSessions(ctx context.Context, tx pgx.Tx, disputeID string, rev event.Revision, now int64) ([]string, error) {
	rows, err := tx.Query(ctx, `SELECT session_id, prompt_bundle_id, policy_hash FROM mediation_sessions
		WHERE dispute_id = $1 AND state NOT IN ('closed', 'summary_delivered', 'escalation_recommended', 'superseded_by_human')
		ORDER BY started_at DESC, session_id FOR UPDATE`, disputeID)
	if err != nil {
		return nil, fmt.Errorf("find live sessions: %w", err)
	}
	type sess struct{ id, bundle, hash string }
	live, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (sess, error) {
		var s sess
		err := r.Scan(&s.id, &s.bundle, &s.hash)
		return s, err
	})
	if err != nil {
		return nil, fmt.Errorf("find live sessions: %w", err)
	}
	var closed []string
	for _, s := range live {
		superseded := map[string]string{
			"reason": "dispute_resolved_externally", "resolution_status": string(rev.Status),
			"dispute_id": disputeID, "event_id": rev.EventID,
		}
		closedPayload := map[string]string{"reason": "dispute_resolved_externally", "dispute_id": disputeID}
		for _, step := range []struct {
			state, kind string
			payload     map[string]string
		}{
			{"superseded_by_human", "superseded_by_human", superseded},
			{"closed", "session_closed", closedPayload},
		} {
			if _, err := tx.Exec(ctx, `UPDATE mediation_sessions SET state = $2, last_transition_at = $3 WHERE session_id = $1`,
				s.id, step.state, now); err != nil {
				return nil, fmt.Errorf("close session: %w", err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO mediation_events (session_id, kind, payload_json, prompt_bundle_id, policy_hash, occurred_at)
				VALUES ($1, $2, $3, $4, $5, $6)`, s.id, step.kind, step.payload, s.bundle, s.hash, now); err != nil {
				return nil, fmt.Errorf("audit session closure: %w", err)
			}
		}
		closed = append(closed, s.id)
	}
	return closed, nil
}

func ptr[T any](v T) *T { return &v }

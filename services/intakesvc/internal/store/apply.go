package store

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/notiflog"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// Plan is what to do with one revision, decided by the caller from the
// dispute as recorded (see Decider). The store carries it out; it decides
// nothing itself.
type Plan struct {
	// Insert records the dispute (state new, the revision as its creator).
	Insert bool
	// Track makes the revision the newest applied one.
	Track bool
	// SetStatus sets disputes.dispute_status to the revision's status.
	SetStatus bool
	// To is the lifecycle move to make ("" for none), with its trigger.
	To      lifecycle.State
	Trigger string
	// DMs is the notification batch to queue (nil for none).
	DMs *Batch
}

// Batch is one notification batch: one DM per solver, written to the
// outbox (intake_notification_jobs) in the transaction that decided it.
type Batch struct {
	// Type is the notif_type (initial, re-notification, assignment).
	Type string
	// Period is the batch's period (re-notifications count them; 0 for
	// the others).
	Period int64
	// Body is the DM; nil when it is built at the first attempt
	// (assignments, see PinBody).
	Body *string
	// Solvers are the recipients (configured pubkeys, verbatim), in order.
	Solvers []string
	// Keys are relaygw idempotency keys, one per solver.
	Keys []string
	// NotBefore (unix s) defers the batch; nil sends it now.
	NotBefore *int64
	// Lease > 0 leases the batch to the caller in the same transaction
	// (one job per distinct solver), so it sends them without claiming
	// them one by one. Only a new dispute's batch is leased (it cannot wait
	// behind an earlier DM); elsewhere Lease is ignored.
	Lease time.Duration
}

// ErrInvalidPlan means a plan could not be carried out as given (it
// contradicts the dispute as recorded); nothing was written.
var ErrInvalidPlan = errors.New("invalid plan")

// Decider decides what a revision does, given the dispute as recorded (nil
// when it is not). It runs inside ApplyRevision's transaction, under the
// dispute's lock, and must not block.
type Decider func(cur *Dispute) Plan

// ApplyResult says what ApplyRevision did.
type ApplyResult struct {
	// Plan is the plan that was carried out.
	Plan Plan
	// Dispute is the dispute after the revision (nil when nothing is
	// recorded).
	Dispute *Dispute
	// From is the state before the transition, when there was one.
	From lifecycle.State
	// JobIDs are the DMs queued (outbox rows), in solver order.
	JobIDs []int64
	// Claimed are the queued DMs leased to the caller in the same
	// transaction (Batch.Lease), ready to send. Other DMs (JobIDs not in
	// Claimed) are claimed with ClaimJob: they may wait behind earlier
	// ones.
	Claimed []Job
}

// ApplyRevision persists the effect of one verified revision, as decide
// plans it, and advances the intake cursor to rev.Cursor (when > 0), in one
// transaction: the dispute row, its lifecycle transition and history row,
// the DMs of the plan, and the change-feed rows. Handlers of one dispute
// are serialised across replicas by an advisory lock, taken before the row
// is read and decide is called.
func (s *Store) ApplyRevision(ctx context.Context, rev event.Revision, now time.Time, decide Decider) (ApplyResult, error) {
	var res ApplyResult
	err := s.inTxTail(ctx, func(tx pgx.Tx) (int64, []pendingChange, error) {
		res = ApplyResult{}
		// One round trip: the per-dispute lock, then the row.
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "intakesvc/dispute/"+rev.DisputeID)
		b.Queue(`SELECT `+disputeCols+` FROM disputes WHERE dispute_id = $1 FOR NO KEY UPDATE`, rev.DisputeID)
		br := tx.SendBatch(ctx, b)
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			return 0, nil, fmt.Errorf("lock dispute: %w", err)
		}
		var cur *Dispute
		d, err := scanDispute(br.QueryRow())
		switch {
		case err == nil:
			cur = &d
		case !errors.Is(err, pgx.ErrNoRows):
			_ = br.Close()
			return 0, nil, fmt.Errorf("read dispute: %w", err)
		}
		if err := br.Close(); err != nil {
			return 0, nil, fmt.Errorf("read dispute: %w", err)
		}
		var seen *Dispute
		if cur != nil {
			c := *cur
			seen = &c
		}
		plan := decide(seen)
		if plan.Insert && cur != nil {
			return 0, nil, fmt.Errorf("%w: revision %s inserts dispute %s, which is recorded", ErrInvalidPlan, rev.EventID, rev.DisputeID)
		}
		if !plan.Insert && cur == nil && (plan.Track || plan.To != "" || plan.DMs != nil) {
			return 0, nil, fmt.Errorf("%w: revision %s changes dispute %s, which is not recorded", ErrInvalidPlan, rev.EventID, rev.DisputeID)
		}
		if plan.DMs != nil && len(plan.DMs.Keys) != len(plan.DMs.Solvers) {
			return 0, nil, fmt.Errorf("%w: revision %s: %d keys for %d solvers", ErrInvalidPlan, rev.EventID, len(plan.DMs.Keys), len(plan.DMs.Solvers))
		}
		if plan.DMs != nil && len(plan.DMs.Solvers) == 0 {
			plan.DMs = nil
		}
		res.Plan = plan
		unix := now.Unix()
		var changes []pendingChange

		if plan.Insert {
			d := Dispute{
				DisputeID: rev.DisputeID, EventID: rev.EventID, MostroPubkey: rev.Pubkey,
				InitiatorRole: rev.Initiator, DisputeStatus: string(rev.Status), EventTimestamp: rev.CreatedAt,
				DetectedAt: unix, LifecycleState: lifecycle.New,
				NewestEventID: ptr(rev.EventID), NewestCreatedAt: ptr(rev.CreatedAt),
			}
			if rev.OpenedAt > 0 {
				d.OpenedAt = ptr(rev.OpenedAt)
			}
			if plan.DMs != nil && plan.DMs.Type == string(notiflog.TypeInitial) {
				d.NotifyClaimedAt = ptr(unix) // the initial batch, queued below
			}
			// The row and its DMs in one round trip (in order: the jobs
			// reference the row).
			b := &pgx.Batch{}
			b.Queue(`INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role,
				dispute_status, event_timestamp, detected_at, lifecycle_state, opened_at, newest_event_id, newest_created_at,
				notify_claimed_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, 'new', $8, $9, $10, $11) ON CONFLICT (dispute_id) DO NOTHING`,
				d.DisputeID, d.EventID, d.MostroPubkey, d.InitiatorRole, d.DisputeStatus, d.EventTimestamp,
				d.DetectedAt, d.OpenedAt, d.NewestEventID, d.NewestCreatedAt, d.NotifyClaimedAt)
			var nb newBatch
			// A new dispute's DMs are queued with it unless they follow a
			// transition (an in-progress first sight: new -> taken first).
			early := plan.DMs != nil && plan.To == ""
			if early {
				// A new dispute has no earlier DM: each solver's is due now.
				nb = newBatch{Batch: *plan.DMs, disputeID: d.DisputeID, batchAt: unix, state: d.LifecycleState}
				nb.queue(b)
			}
			br := tx.SendBatch(ctx, b)
			tag, err := br.Exec()
			if err != nil {
				_ = br.Close()
				return 0, nil, fmt.Errorf("insert dispute: %w", err)
			}
			if tag.RowsAffected() == 0 {
				// Impossible under the advisory lock; never notify twice.
				_ = br.Close()
				return 0, nil, fmt.Errorf("insert dispute %s: row appeared under the dispute lock", rev.DisputeID)
			}
			if early {
				if res.JobIDs, res.Claimed, err = nb.read(br); err != nil {
					_ = br.Close()
					return 0, nil, fmt.Errorf("queue %s notifications: %w", nb.Type, err)
				}
			}
			if err := br.Close(); err != nil {
				return 0, nil, fmt.Errorf("insert dispute: %w", err)
			}
			changes = append(changes, pendingChange{kind: ChangeDetected, snapshot: d})
			cur = &d
			if early {
				plan.DMs = nil // queued
			}
		} else if plan.Track {
			cur.NewestEventID, cur.NewestCreatedAt = ptr(rev.EventID), ptr(rev.CreatedAt)
			if plan.SetStatus {
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

		if plan.To != "" {
			res.From = cur.LifecycleState
			tid, err := transition(ctx, tx, cur, plan.To, plan.Trigger, unix)
			if err != nil {
				return 0, nil, err
			}
			changes = append(changes, pendingChange{kind: ChangeTransitioned, transition: tid, snapshot: *cur})
		} else if plan.Track && !plan.Insert {
			changes = append(changes, pendingChange{kind: ChangeUpdated, snapshot: *cur})
		}

		if plan.DMs != nil {
			// Not leased: earlier DMs may be pending (the caller dispatches
			// the ids; ClaimJob checks).
			nb := newBatch{Batch: *plan.DMs, disputeID: cur.DisputeID, batchAt: unix}
			nb.Lease = 0
			if res.JobIDs, res.Claimed, err = insertBatch(ctx, tx, nb); err != nil {
				return 0, nil, fmt.Errorf("queue %s notifications: %w", nb.Type, err)
			}
		}

		if plan.Insert || plan.Track || plan.To != "" {
			res.Dispute = cur
		}
		return rev.Cursor, changes, nil
	})
	if err != nil {
		return ApplyResult{}, err
	}
	return res, nil
}

// newBatch is a Batch being queued for one dispute.
type newBatch struct {
	Batch
	disputeID string
	batchAt   int64
	// state describes the dispute for the leased jobs.
	state lifecycle.State
}

// queue adds the insert to b.
func (nb *newBatch) queue(b *pgx.Batch) {
	claim := make([]bool, len(nb.Solvers))
	seen := make(map[string]bool, len(nb.Solvers))
	for i, sv := range nb.Solvers {
		claim[i] = nb.Lease > 0 && nb.NotBefore == nil && !seen[sv]
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
		nb.disputeID, nb.Type, nb.Period, nb.Body, nb.batchAt, nb.Solvers, nb.Keys, nb.NotBefore,
		nb.Lease.Seconds(), claim)
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
	ids := make([]int64, 0, len(nb.Keys))
	var claimed []Job
	for i, k := range nb.Keys {
		if len(byKey[k]) == 0 {
			return nil, nil, fmt.Errorf("insert jobs: no row for %s", k)
		}
		x := byKey[k][0]
		byKey[k] = byKey[k][1:]
		ids = append(ids, x.id)
		if x.claimed {
			claimed = append(claimed, Job{ID: x.id, BatchID: x.batch, DisputeID: nb.disputeID, SolverPubkey: nb.Solvers[i],
				NotifType: nb.Type, Period: nb.Period, IdempotencyKey: k, Body: nb.Body, BatchAt: nb.batchAt,
				Attempts: 1, State: nb.state})
		}
	}
	return ids, claimed, nil
}

// insertBatch queues one DM per solver (one batch) and returns the job ids
// in solver order, and the jobs leased to the caller (nb.Lease > 0).
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

func ptr[T any](v T) *T { return &v }

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

// The notif_type values of the outbox (pkg/notiflog's vocabulary).
const (
	typeInitial        = string(notiflog.TypeInitial)
	typeRenotification = string(notiflog.TypeRenotification)
	typeAssignment     = string(notiflog.TypeAssignment)
)

// Job is one queued DM (an intake_notification_jobs row) with what the
// sender needs of its dispute, read when it was claimed.
type Job struct {
	ID             int64
	BatchID        int64
	DisputeID      string
	SolverPubkey   string
	NotifType      string
	Period         int64
	IdempotencyKey string
	// Body is the DM; nil for an assignment never attempted (built, then
	// kept with PinBody, at its first attempt).
	Body     *string
	BatchAt  int64
	Attempts int
	// State and AssignedSolver are the dispute's, at claim time.
	State          lifecycle.State
	AssignedSolver string
	// QueuedSeconds is how long the job waited between being queued and
	// being claimed (database clock).
	QueuedSeconds float64
}

// Job outcomes.
const (
	OutcomeSent    = "sent"
	OutcomeFailed  = "failed"
	OutcomeSkipped = "skipped"
)

const claimedJobSelect = `SELECT c.id, c.batch_id, c.dispute_id, c.solver_pubkey, c.notif_type, c.period,
	c.idempotency_key, c.body, c.batch_at, c.attempts, d.lifecycle_state, COALESCE(d.assigned_solver, ''),
	extract(epoch FROM clock_timestamp() - c.created_at)::float8
	FROM c JOIN disputes d ON d.dispute_id = c.dispute_id ORDER BY c.id`

// claimable is the condition under which a pending job may be claimed: due,
// not leased, and no earlier job for the same (dispute, solver) pending, so
// a solver receives one dispute's DMs in order.
const claimable = `j.done_at IS NULL AND j.not_before <= now()
	AND (j.claimed_until IS NULL OR j.claimed_until < now())
	AND NOT EXISTS (SELECT 1 FROM intake_notification_jobs p
		WHERE p.dispute_id = j.dispute_id AND p.solver_pubkey = j.solver_pubkey AND p.id < j.id AND p.done_at IS NULL)`

func scanJobs(rows pgx.Rows) ([]Job, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Job, error) {
		var j Job
		var state string
		err := r.Scan(&j.ID, &j.BatchID, &j.DisputeID, &j.SolverPubkey, &j.NotifType, &j.Period,
			&j.IdempotencyKey, &j.Body, &j.BatchAt, &j.Attempts, &state, &j.AssignedSolver, &j.QueuedSeconds)
		j.State = lifecycle.State(state)
		return j, err
	})
}

// ClaimJob leases job id for lease if it can be sent now; nil when it is
// done, leased by someone else, not due, or waiting behind an earlier DM.
func (s *Store) ClaimJob(ctx context.Context, id int64, lease time.Duration) (*Job, error) {
	rows, err := s.pool.Query(ctx, `WITH c AS (
		UPDATE intake_notification_jobs j SET claimed_until = now() + make_interval(secs => $2), attempts = j.attempts + 1
		WHERE j.id = $1 AND `+claimable+` RETURNING j.*) `+claimedJobSelect, id, lease.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("claim job: %w", err)
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	return &jobs[0], nil
}

// ClaimDueJobs leases up to limit sendable jobs (oldest first), skipping
// rows other replicas are claiming: the recovery path for jobs whose worker
// died, deferred assignments, and jobs no local worker was told about.
func (s *Store) ClaimDueJobs(ctx context.Context, limit int, lease time.Duration) ([]Job, error) {
	rows, err := s.pool.Query(ctx, `WITH due AS (
		SELECT j.id FROM intake_notification_jobs j WHERE `+claimable+`
		ORDER BY j.id LIMIT $1 FOR UPDATE SKIP LOCKED),
	c AS (
		UPDATE intake_notification_jobs j SET claimed_until = now() + make_interval(secs => $2), attempts = j.attempts + 1
		FROM due WHERE j.id = due.id RETURNING j.*) `+claimedJobSelect, limit, lease.Seconds())
	if err != nil {
		return nil, fmt.Errorf("claim due jobs: %w", err)
	}
	jobs, err := scanJobs(rows)
	if err != nil {
		return nil, fmt.Errorf("claim due jobs: %w", err)
	}
	return jobs, nil
}

// ReleaseJob gives up a claim on a job that was not sent (the process is
// stopping), so any replica may send it at once.
func (s *Store) ReleaseJob(ctx context.Context, id int64) error {
	return s.ReleaseJobs(ctx, []int64{id})
}

// NextJobFor returns the oldest pending job of (dispute, solver), if any.
func (s *Store) NextJobFor(ctx context.Context, disputeID, solver string) (int64, bool, error) {
	var id int64
	err := s.pool.QueryRow(ctx, `SELECT id FROM intake_notification_jobs
		WHERE dispute_id = $1 AND solver_pubkey = $2 AND done_at IS NULL ORDER BY id LIMIT 1`, disputeID, solver).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("next job: %w", err)
	}
	return id, true, nil
}

// CompleteResult says what completing a job did.
type CompleteResult struct {
	// AlreadyDone: another worker completed the job first; nothing written.
	AlreadyDone bool
	// NotificationID is the notifications row (0 when skipped).
	NotificationID int64
	// Transitioned: the dispute moved new -> notified.
	Transitioned bool
	// BatchReachedNobody: the job's batch is complete and no DM of it was
	// delivered; the next tick notifies again (see ClaimDue).
	BatchReachedNobody bool
	// Rescheduled: the failed attempt was recorded and the DM will be
	// tried again (same idempotency key) after the given delay.
	Rescheduled bool
}

// Delivered is a DM to record as sent (relaygw accepted it) or skipped.
type Delivered struct {
	Job     Job
	Outcome string // OutcomeSent or OutcomeSkipped
}

// Completed is what recording one Delivered did.
type Completed struct {
	CompleteResult
	// Next is the oldest pending job of the same (dispute, solver), 0 if
	// none.
	Next int64
}

// CompleteDelivered records many sent or skipped DMs in one transaction
// (CompleteJob does one failed attempt): each job is finished with its
// notifications row (sent only, through pkg/notiflog), last_notified_at
// moves on delivered initial and re-notification DMs, a new dispute whose
// initial DM was delivered moves new -> notified (trigger
// initial_notification: one history and feed row, reported on the batch's
// first such job of the dispute), and the next pending job of each
// (dispute, solver) is returned. Results are in items' order. A job
// completed before (by another worker or replica) is AlreadyDone and
// writes nothing. items must not hold two jobs of one (dispute, solver)
// (the second cannot be claimed before the first is done).
//
// Round trips: the pending jobs are locked and their notifications rows
// written first (skipped when nothing was sent), then one statement
// finishes the jobs and moves the disputes, then the feed rows go with
// COMMIT.
func (s *Store) CompleteDelivered(ctx context.Context, items []Delivered, now time.Time) ([]Completed, error) {
	if len(items) == 0 {
		return nil, nil
	}
	if err := lifecycle.Check(lifecycle.New, lifecycle.Notified); err != nil {
		return nil, err
	}
	// pos[k] is the item of the k-th input row; a job given twice is
	// recorded once (the repeats are AlreadyDone).
	ids, outcomes, ats := make([]int64, 0, len(items)), make([]string, 0, len(items)), make([]int64, 0, len(items))
	pos := make([]int, 0, len(items))
	seen := make(map[int64]bool, len(items))
	var sent []int64
	for i, it := range items {
		if it.Outcome != OutcomeSent && it.Outcome != OutcomeSkipped {
			return nil, fmt.Errorf("complete delivered: outcome %q", it.Outcome)
		}
		if seen[it.Job.ID] {
			continue
		}
		seen[it.Job.ID] = true
		at := now.Unix()
		if it.Job.NotifType == typeRenotification {
			at = it.Job.BatchAt
		}
		ids, outcomes, ats, pos = append(ids, it.Job.ID), append(outcomes, it.Outcome), append(ats, at), append(pos, i)
		if it.Outcome == OutcomeSent {
			sent = append(sent, it.Job.ID)
		}
	}
	out := make([]Completed, len(items))
	err := s.inTxTail(ctx, func(tx pgx.Tx) (int64, []pendingChange, error) {
		for i := range out {
			out[i] = Completed{CompleteResult: CompleteResult{AlreadyDone: true}}
		}
		nids, err := recordSent(ctx, tx, sent, now.Unix())
		if err != nil {
			return 0, nil, err
		}
		nidOf := make([]*int64, len(ids))
		for k, id := range ids {
			if n, ok := nids[id]; ok {
				nidOf[k] = &n
			}
		}
		// Disputes are locked in id order (no deadlock between batches),
		// after the jobs.
		rows, err := tx.Query(ctx, `WITH input AS MATERIALIZED (
				SELECT i.id, i.outcome, i.at, i.ord, i.nid
				FROM unnest($1::bigint[], $2::text[], $3::bigint[], $6::bigint[]) WITH ORDINALITY AS i(id, outcome, at, nid, ord)),
			job AS (
				UPDATE intake_notification_jobs j SET done_at = now(), outcome = i.outcome, claimed_until = NULL,
					notification_id = i.nid
				FROM input i WHERE j.id = i.id AND j.done_at IS NULL
				RETURNING j.id, j.dispute_id, j.solver_pubkey, j.notif_type, i.outcome, i.at, i.nid),
			due AS (
				SELECT dispute_id, max(at) AS at, min(id) FILTER (WHERE notif_type = 'initial') AS initial_job
				FROM job WHERE outcome = 'sent' AND notif_type IN ('initial', 're-notification') GROUP BY dispute_id),
			locked AS (
				SELECT d.dispute_id, d.lifecycle_state AS old_state, due.at, due.initial_job
				FROM disputes d JOIN due ON due.dispute_id = d.dispute_id
				ORDER BY d.dispute_id FOR NO KEY UPDATE OF d),
			upd AS (
				UPDATE disputes d SET last_notified_at = GREATEST(COALESCE(d.last_notified_at, 0), l.at),
					lifecycle_state = CASE WHEN l.initial_job IS NOT NULL AND l.old_state = 'new' THEN 'notified' ELSE d.lifecycle_state END,
					last_state_change = CASE WHEN l.initial_job IS NOT NULL AND l.old_state = 'new' THEN $4 ELSE d.last_state_change END
				FROM locked l WHERE d.dispute_id = l.dispute_id
				RETURNING d.dispute_id, l.old_state, d.lifecycle_state, l.initial_job, to_jsonb(d) AS snapshot),
			trans AS (
				INSERT INTO dispute_state_transitions (dispute_id, from_state, to_state, transitioned_at, trigger)
				SELECT dispute_id, old_state, lifecycle_state, $4, $5 FROM upd
				WHERE old_state IS DISTINCT FROM lifecycle_state ORDER BY dispute_id
				RETURNING id, dispute_id)
			SELECT i.ord, job.id IS NOT NULL, job.nid, t.id, u.snapshot,
				COALESCE((SELECT min(p.id) FROM intake_notification_jobs p
					WHERE p.dispute_id = job.dispute_id AND p.solver_pubkey = job.solver_pubkey
					  AND p.done_at IS NULL AND p.id <> job.id), 0)
			FROM input i LEFT JOIN job ON job.id = i.id
			LEFT JOIN upd u ON u.initial_job = job.id
			LEFT JOIN trans t ON t.dispute_id = u.dispute_id`,
			ids, outcomes, ats, now.Unix(), lifecycle.TriggerInitialNotification, nidOf)
		if err != nil {
			return 0, nil, fmt.Errorf("complete jobs: %w", err)
		}
		var changes []pendingChange
		for rows.Next() {
			var ord int64
			var done bool
			var nid, tid *int64
			var snap []byte
			var next int64
			if err := rows.Scan(&ord, &done, &nid, &tid, &snap, &next); err != nil {
				rows.Close()
				return 0, nil, fmt.Errorf("complete jobs: %w", err)
			}
			c := &out[pos[ord-1]]
			c.AlreadyDone = !done
			if !done {
				continue
			}
			c.Next = next
			if nid != nil {
				c.NotificationID = *nid
			}
			if tid != nil {
				c.Transitioned = true
				changes = append(changes, pendingChange{kind: ChangeTransitioned, transition: *tid,
					snapshot: Dispute{DisputeID: items[pos[ord-1]].Job.DisputeID}, raw: snap})
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return 0, nil, fmt.Errorf("complete jobs: %w", err)
		}
		return 0, changes, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// recordSent locks the pending jobs among ids (in id order: the outbox
// rows come before the disputes in the lock order) and writes one sent
// notifications row for each, at sentAt; it returns each locked job's
// notification id. Jobs already done are left out: they were recorded by
// whoever finished them.
func recordSent(ctx context.Context, tx pgx.Tx, ids []int64, sentAt int64) (map[int64]int64, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := tx.Query(ctx, `SELECT j.id, j.dispute_id, j.solver_pubkey, j.notif_type
		FROM intake_notification_jobs j JOIN unnest($1::bigint[]) WITH ORDINALITY AS i(id, ord) ON i.id = j.id
		WHERE j.done_at IS NULL ORDER BY i.ord FOR UPDATE OF j`, ids)
	if err != nil {
		return nil, fmt.Errorf("lock jobs: %w", err)
	}
	type pending struct {
		id              int64
		dispute, solver string
		notifType       string
	}
	jobs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pending, error) {
		var p pending
		err := r.Scan(&p.id, &p.dispute, &p.solver, &p.notifType)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("lock jobs: %w", err)
	}
	if len(jobs) == 0 {
		return nil, nil
	}
	entries := make([]notiflog.Entry, len(jobs))
	for i, j := range jobs {
		entries[i] = notiflog.Entry{DisputeID: j.dispute, SolverPubkey: j.solver, SentAt: sentAt,
			Status: notiflog.StatusSent, Type: notiflog.Type(j.notifType)}
	}
	nids, err := notiflog.RecordAll(ctx, tx, entries)
	if err != nil {
		return nil, fmt.Errorf("record notifications: %w", err)
	}
	out := make(map[int64]int64, len(jobs))
	for i, j := range jobs {
		out[j.id] = nids[i]
	}
	return out, nil
}

// PinBody keeps body as job id's DM unless the job already has one, and
// returns the body the job carries from now on. An assignment's body is
// built at its first attempt (so it names Serbero when Serbero's own take
// was confirmed before); every later attempt must send the same bytes,
// because relaygw refuses an idempotency key reused with another body.
func (s *Store) PinBody(ctx context.Context, id int64, body string) (string, error) {
	var out string
	if err := s.pool.QueryRow(ctx, `UPDATE intake_notification_jobs SET body = COALESCE(body, $2)
		WHERE id = $1 RETURNING body`, id, body).Scan(&out); err != nil {
		return "", fmt.Errorf("pin DM body of job %d: %w", id, err)
	}
	return out, nil
}

// ReleaseJobs gives up the claims on jobs that were not sent (the process
// is stopping), so any replica may send them at once.
func (s *Store) ReleaseJobs(ctx context.Context, ids []int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE intake_notification_jobs SET claimed_until = NULL
		WHERE id = ANY($1) AND done_at IS NULL`, ids); err != nil {
		return fmt.Errorf("release jobs: %w", err)
	}
	return nil
}

// CompleteJob records the attempt (one notifications row, unless skipped)
// and its consequences: new -> notified on the first delivered initial DM,
// last_notified_at on any delivered initial or re-notification, and a batch
// that reached nobody made due again. errMsg is the error_message of a
// failed attempt. A failed attempt with retryIn > 0 is recorded and the job
// is rescheduled instead of finished.
func (s *Store) CompleteJob(ctx context.Context, job Job, outcome, errMsg string, now time.Time, retryIn time.Duration) (CompleteResult, error) {
	var res CompleteResult
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		res = CompleteResult{}
		d, err := lockDispute(ctx, tx, job.DisputeID)
		if err != nil {
			return err
		}
		if d == nil {
			return fmt.Errorf("complete job %d: dispute %s not found", job.ID, job.DisputeID)
		}
		var done bool
		if err := tx.QueryRow(ctx, `SELECT done_at IS NOT NULL FROM intake_notification_jobs WHERE id = $1 FOR UPDATE`,
			job.ID).Scan(&done); err != nil {
			return fmt.Errorf("read job: %w", err)
		}
		if done {
			res.AlreadyDone = true
			return nil
		}
		unix := now.Unix()
		var notifID *int64
		if outcome != OutcomeSkipped {
			e := notiflog.Entry{DisputeID: job.DisputeID, SolverPubkey: job.SolverPubkey, SentAt: unix,
				Status: notiflog.Status(outcome), Type: notiflog.Type(job.NotifType)}
			if outcome == OutcomeFailed {
				e.Error = errMsg
			}
			if res.NotificationID, err = notiflog.Record(ctx, tx, e); err != nil {
				return fmt.Errorf("record notification: %w", err)
			}
			notifID = &res.NotificationID
		}
		if outcome == OutcomeFailed && retryIn > 0 {
			res.Rescheduled = true
			if _, err := tx.Exec(ctx, `UPDATE intake_notification_jobs SET claimed_until = NULL,
				not_before = now() + make_interval(secs => $2) WHERE id = $1`, job.ID, retryIn.Seconds()); err != nil {
				return fmt.Errorf("reschedule job: %w", err)
			}
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE intake_notification_jobs SET done_at = now(), outcome = $2,
			notification_id = $3, claimed_until = NULL WHERE id = $1`, job.ID, outcome, notifID); err != nil {
			return fmt.Errorf("finish job: %w", err)
		}
		if job.NotifType == typeAssignment {
			return nil
		}

		var changes []pendingChange
		switch outcome {
		case OutcomeSent:
			at := unix
			if job.NotifType == typeRenotification {
				at = job.BatchAt
			}
			if d.LastNotifiedAt == nil || *d.LastNotifiedAt < at {
				d.LastNotifiedAt = ptr(at)
				if _, err := tx.Exec(ctx, `UPDATE disputes SET last_notified_at = $2 WHERE dispute_id = $1`, d.DisputeID, at); err != nil {
					return fmt.Errorf("update last_notified_at: %w", err)
				}
			}
			if job.NotifType == typeInitial && d.LifecycleState == lifecycle.New {
				tid, err := transition(ctx, tx, d, lifecycle.Notified, lifecycle.TriggerInitialNotification, unix)
				if err != nil {
					return err
				}
				res.Transitioned = true
				changes = append(changes, pendingChange{kind: ChangeTransitioned, transition: tid, snapshot: *d})
			}
		case OutcomeFailed:
			var pending, sent int64
			if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE done_at IS NULL), count(*) FILTER (WHERE outcome = 'sent')
				FROM intake_notification_jobs WHERE batch_id = $1`, job.BatchID).Scan(&pending, &sent); err != nil {
				return fmt.Errorf("read batch: %w", err)
			}
			latest := d.NotifyPeriod == job.Period && d.NotifyClaimedAt != nil && *d.NotifyClaimedAt == job.BatchAt
			if pending == 0 && sent == 0 && latest {
				res.BatchReachedNobody = true
				if _, err := tx.Exec(ctx, `UPDATE disputes SET notify_claimed_at = NULL WHERE dispute_id = $1`, d.DisputeID); err != nil {
					return fmt.Errorf("release batch: %w", err)
				}
			}
		}
		return writeChanges(ctx, tx, changes)
	})
	if err != nil {
		return CompleteResult{}, err
	}
	return res, nil
}

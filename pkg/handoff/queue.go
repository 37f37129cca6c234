package handoff

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/serbero/serbero/pkg/audit"
)

// Channel is the Postgres NOTIFY channel Enqueue and Requeue signal on. The
// payload is the queue row id; treat it as a hint only.
const Channel = "serbero_handoffs"

// KindHandoffPrepared is the audit kind Enqueue writes (pkg/audit).
const KindHandoffPrepared = string(audit.KindHandoffPrepared)

// MaxClaimBatch is the largest batch Claim returns (the reference's
// constant scan limit).
const MaxClaimBatch = 128

// Status is a queue row's state.
type Status string

// The queue states (see the package doc for the transitions).
const (
	StatusPending Status = "pending"
	StatusClaimed Status = "claimed"
	StatusDone    Status = "done"
	StatusParked  Status = "parked"
	StatusFailed  Status = "failed"
)

// Outcome is how a done handoff was consumed.
type Outcome string

// The outcomes: a dispatch row was recorded (dispatched or send_failed), or
// the handoff was reported as parse-failed (either reason).
const (
	OutcomeDispatched             Outcome = "dispatched"
	OutcomeSendFailed             Outcome = "send_failed"
	OutcomeDeserializeFailed      Outcome = "deserialize_failed"
	OutcomeOrphanDisputeReference Outcome = "orphan_dispute_reference"
)

// ParkReason is why a handoff waits without being consumed.
type ParkReason string

// The park reasons.
const (
	ParkUnroutable ParkReason = "unroutable"
	ParkSuperseded ParkReason = "superseded"
)

// Errors of the queue API.
var (
	// ErrLeaseLost means the row is no longer claimed by this lease (its
	// claim expired and it was rescued, maybe claimed by another consumer).
	ErrLeaseLost = errors.New("handoff claim lost")
	// ErrNotFound means no queue row has that id.
	ErrNotFound = errors.New("handoff not found")
	// ErrNotRequeueable means the row is neither parked nor failed.
	ErrNotRequeueable = errors.New("handoff is not parked or failed")
)

// DB is what the queue functions run on: a pool, a connection or a
// transaction.
type DB interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Handoff is one queue row.
type Handoff struct {
	// ID is the queue row id.
	ID int64
	// HandoffEventID is the id of the handoff_prepared mediation_events row.
	HandoffEventID int64
	// DisputeID is the package's dispute id, or the best-effort id (or
	// empty) when the payload does not parse.
	DisputeID string
	// SessionID, PromptBundleID and PolicyHash are the handoff_prepared
	// row's columns, copied into every phase 4 audit row (nil = NULL).
	SessionID      *string
	PromptBundleID *string
	PolicyHash     *string
	// Trigger, EvidenceRefs, RationaleRefs and AssembledAt are the
	// package's fields (zero when the payload does not parse).
	Trigger       string
	EvidenceRefs  []string
	RationaleRefs []string
	AssembledAt   int64
	// PayloadJSON is the package exactly as the producer wrote it.
	PayloadJSON string

	Status            Status
	Attempts          int
	ConsecutiveErrors int
	NextAttemptAt     time.Time
	ClaimedBy         string
	ClaimedAt         time.Time // zero when not claimed
	ClaimDeadline     time.Time // zero when not claimed
	ParkedReason      ParkReason
	LastError         string
	Outcome           Outcome
	CreatedAt         time.Time
	UpdatedAt         time.Time
	FinishedAt        time.Time // zero until done or failed
}

// Lease identifies one claim of a row: its id, the claimer and the attempt
// number the claim gave it.
type Lease struct {
	ID      int64
	Owner   string
	Attempt int
}

// Lease returns the lease of a claimed row.
func (h *Handoff) Lease() Lease { return Lease{ID: h.ID, Owner: h.ClaimedBy, Attempt: h.Attempts} }

// Meta is what Enqueue needs besides the package.
type Meta struct {
	// OccurredAt is the handoff_prepared row's occurred_at (unix seconds);
	// zero means now. The producer passes the occurred_at of its
	// escalation_recommended row so both share it, as in the reference.
	OccurredAt int64
}

// RawMeta describes a handoff whose payload is given verbatim (EnqueueRaw):
// the handoff_prepared row's columns.
type RawMeta struct {
	SessionID      *string
	PromptBundleID *string
	PolicyHash     *string
	// OccurredAt is unix seconds; zero means now.
	OccurredAt int64
}

// Enqueued names a new handoff.
type Enqueued struct {
	// ID is the queue row id.
	ID int64
	// HandoffEventID is the id of the handoff_prepared mediation_events row.
	HandoffEventID int64
}

// Enqueue records a handoff in the caller's transaction: the
// handoff_prepared mediation_events row (payload = pkg.Encode(); session_id,
// prompt_bundle_id and policy_hash columns from the package), the queue row,
// and a notification on Channel delivered when tx commits.
func Enqueue(ctx context.Context, tx pgx.Tx, pkg Package, meta Meta) (Enqueued, error) {
	if err := pkg.Validate(); err != nil {
		return Enqueued{}, err
	}
	payload := string(pkg.Encode())
	rm := RawMeta{PromptBundleID: &pkg.PromptBundleID, PolicyHash: &pkg.PolicyHash, OccurredAt: meta.OccurredAt}
	if pkg.HasSession() {
		rm.SessionID = &pkg.SessionID
	}
	return enqueue(ctx, tx, payload, payload, &pkg, rm)
}

// EnqueueRaw records a handoff whose payload is given verbatim, exactly as
// Enqueue does otherwise. It exists for payloads not built by this package
// (imports of reference rows, tests of malformed payloads). The typed
// columns are filled when the payload parses; the dispute id is the
// best-effort one otherwise. The audit row's payload is the payload when
// it is a JSON object, else {} (mediation_events only holds objects).
func EnqueueRaw(ctx context.Context, tx pgx.Tx, payload string, meta RawMeta) (Enqueued, error) {
	var pkg *Package
	if p, err := Decode([]byte(payload)); err == nil {
		pkg = &p
	}
	auditPayload := "{}"
	var probe map[string]json.RawMessage
	if json.Unmarshal([]byte(payload), &probe) == nil && probe != nil {
		auditPayload = payload
	}
	return enqueue(ctx, tx, payload, auditPayload, pkg, meta)
}

func enqueue(ctx context.Context, tx pgx.Tx, payload, auditPayload string, pkg *Package, meta RawMeta) (Enqueued, error) {
	occurred := meta.OccurredAt
	if occurred == 0 {
		occurred = time.Now().Unix()
	}
	var (
		disputeID           *string
		trigger             *string
		evidence, rationale []string
		assembled           *int64
	)
	if pkg != nil {
		disputeID, trigger, assembled = &pkg.DisputeID, &pkg.Trigger, &pkg.AssembledAt
		evidence, rationale = nonNil(pkg.EvidenceRefs), nonNil(pkg.RationaleRefs)
	} else if id := BestEffortDisputeID([]byte(payload)); id != UnknownDisputeID {
		disputeID = &id
	}
	eventID, err := audit.Append(ctx, tx, audit.Event{
		SessionID:      meta.SessionID,
		Payload:        audit.HandoffPrepared{Package: json.RawMessage(auditPayload)},
		PromptBundleID: meta.PromptBundleID,
		PolicyHash:     meta.PolicyHash,
		OccurredAt:     occurred,
	})
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueue handoff: %w", err)
	}
	out := Enqueued{HandoffEventID: eventID}
	err = tx.QueryRow(ctx, `
WITH q AS (
    INSERT INTO handoffs (handoff_event_id, dispute_id, session_id, trigger, evidence_refs, prompt_bundle_id,
                          policy_hash, rationale_refs, assembled_at, payload_json)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
    RETURNING id
)
SELECT q.id, pg_notify('`+Channel+`', q.id::text)::text FROM q`,
		eventID, disputeID, meta.SessionID, trigger, evidence, meta.PromptBundleID, meta.PolicyHash, rationale, assembled, payload,
	).Scan(&out.ID, new(string))
	if err != nil {
		return Enqueued{}, fmt.Errorf("enqueue handoff: %w", err)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// columnList is the SELECT list scan reads, with {p} standing for an
// optional table qualifier.
const columnList = `{p}id, {p}handoff_event_id, COALESCE({p}dispute_id, ''), {p}session_id, {p}prompt_bundle_id,
    {p}policy_hash, COALESCE({p}trigger, ''), COALESCE({p}evidence_refs, '{}'), COALESCE({p}rationale_refs, '{}'),
    COALESCE({p}assembled_at, 0), {p}payload_json, {p}status, {p}attempts, {p}consecutive_errors, {p}next_attempt_at,
    COALESCE({p}claimed_by, ''), {p}claimed_at, {p}claim_deadline, COALESCE({p}parked_reason, ''),
    COALESCE({p}last_error, ''), COALESCE({p}outcome, ''), {p}created_at, {p}updated_at, {p}finished_at`

var (
	columns  = strings.ReplaceAll(columnList, "{p}", "")
	hColumns = strings.ReplaceAll(columnList, "{p}", "h.")
)

func scan(row pgx.Row) (Handoff, error) {
	var (
		h                                Handoff
		claimedAt, deadline, finishedAt  *time.Time
		status, parked, outcome, lastErr string
	)
	err := row.Scan(&h.ID, &h.HandoffEventID, &h.DisputeID, &h.SessionID, &h.PromptBundleID, &h.PolicyHash,
		&h.Trigger, &h.EvidenceRefs, &h.RationaleRefs, &h.AssembledAt,
		&h.PayloadJSON, &status, &h.Attempts, &h.ConsecutiveErrors, &h.NextAttemptAt, &h.ClaimedBy, &claimedAt,
		&deadline, &parked, &lastErr, &outcome, &h.CreatedAt,
		&h.UpdatedAt, &finishedAt)
	if err != nil {
		return Handoff{}, err
	}
	h.Status, h.ParkedReason, h.Outcome, h.LastError = Status(status), ParkReason(parked), Outcome(outcome), lastErr
	if claimedAt != nil {
		h.ClaimedAt = *claimedAt
	}
	if deadline != nil {
		h.ClaimDeadline = *deadline
	}
	if finishedAt != nil {
		h.FinishedAt = *finishedAt
	}
	return h, nil
}

func collect(rows pgx.Rows, err error) ([]Handoff, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Handoff, error) { return scan(r) })
}

func micros(d time.Duration) int64 { return max(d, 0).Microseconds() }

// Claim claims up to n due handoffs (pending, or parked whose retry time has
// come) for owner until now + claimTimeout, oldest due first, skipping rows
// another consumer holds. n is clamped to [1, MaxClaimBatch]. Each claimed
// row's Attempts grows by one; the result is ordered by id.
func Claim(ctx context.Context, db DB, n int, owner string, claimTimeout time.Duration) ([]Handoff, error) {
	if owner == "" {
		return nil, errors.New("claim handoffs: owner is required")
	}
	n = min(max(n, 1), MaxClaimBatch)
	out, err := collect(db.Query(ctx, `
WITH next AS (
    SELECT id FROM handoffs
    WHERE status IN ('pending', 'parked') AND next_attempt_at <= clock_timestamp()
    ORDER BY next_attempt_at, id
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
UPDATE handoffs h
SET status = 'claimed', claimed_by = $2, claimed_at = clock_timestamp(),
    claim_deadline = clock_timestamp() + $3 * interval '1 microsecond',
    parked_reason = NULL, attempts = h.attempts + 1, updated_at = clock_timestamp()
FROM next WHERE h.id = next.id
RETURNING `+hColumns, n, owner, micros(claimTimeout)))
	if err != nil {
		return nil, fmt.Errorf("claim handoffs: %w", err)
	}
	slices.SortFunc(out, func(a, b Handoff) int { return int(a.ID - b.ID) })
	return out, nil
}

// leaseWhere matches the row of a lease only while it is still claimed by it.
const leaseWhere = `id = $1 AND status = 'claimed' AND claimed_by = $2 AND attempts = $3`

func leaseExec(ctx context.Context, db DB, what string, l Lease, sql string, args ...any) error {
	tag, err := db.Exec(ctx, sql, append([]any{l.ID, l.Owner, l.Attempt}, args...)...)
	if err != nil {
		return fmt.Errorf("%s handoff %d: %w", what, l.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s handoff %d: %w", what, l.ID, ErrLeaseLost)
	}
	return nil
}

// Complete marks a claimed handoff consumed with its outcome. Run it in the
// transaction that records the outcome, so both commit or neither does.
func Complete(ctx context.Context, db DB, l Lease, outcome Outcome) error {
	return leaseExec(ctx, db, "complete", l, `
UPDATE handoffs SET status = 'done', outcome = $4, claimed_by = NULL, claim_deadline = NULL,
    consecutive_errors = 0, last_error = NULL, finished_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE `+leaseWhere, string(outcome))
}

// Park puts a claimed handoff aside, unconsumed, until retryAfter from now
// (by the database clock); it is then claimable again like any due row.
// detail is kept as last_error for operators.
func Park(ctx context.Context, db DB, l Lease, retryAfter time.Duration, reason ParkReason, detail string) error {
	return leaseExec(ctx, db, "park", l, `
UPDATE handoffs SET status = 'parked', parked_reason = $4, last_error = $5, claimed_by = NULL,
    claim_deadline = NULL, consecutive_errors = 0,
    next_attempt_at = clock_timestamp() + $6 * interval '1 microsecond', updated_at = clock_timestamp()
WHERE `+leaseWhere, string(reason), detail, micros(retryAfter))
}

// Retry returns a claimed handoff to the queue after a transient error, due
// again retryAfter from now, and counts the error. Once maxErrors
// consecutive errors are counted (maxErrors > 0) it fails the row instead.
// It returns the row's new status.
func Retry(ctx context.Context, db DB, l Lease, retryAfter time.Duration, errText string, maxErrors int) (Status, error) {
	var st string
	err := db.QueryRow(ctx, `
UPDATE handoffs SET
    status = CASE WHEN $6 > 0 AND consecutive_errors + 1 >= $6 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN $6 > 0 AND consecutive_errors + 1 >= $6 THEN clock_timestamp() END,
    consecutive_errors = consecutive_errors + 1, last_error = $4, claimed_by = NULL, claim_deadline = NULL,
    next_attempt_at = clock_timestamp() + $5 * interval '1 microsecond', updated_at = clock_timestamp()
WHERE `+leaseWhere+`
RETURNING status`, l.ID, l.Owner, l.Attempt, errText, micros(retryAfter), maxErrors).Scan(&st)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("retry handoff %d: %w", l.ID, ErrLeaseLost)
	}
	if err != nil {
		return "", fmt.Errorf("retry handoff %d: %w", l.ID, err)
	}
	return Status(st), nil
}

// Release returns a claimed handoff to the queue, due now, without counting
// an error: for a consumer that stops (shutdown) in the middle of it.
func Release(ctx context.Context, db DB, l Lease) error {
	return leaseExec(ctx, db, "release", l, `
UPDATE handoffs SET status = 'pending', claimed_by = NULL, claim_deadline = NULL,
    next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE `+leaseWhere)
}

// Fail gives up on a claimed handoff; only an operator's Requeue brings it
// back.
func Fail(ctx context.Context, db DB, l Lease, reason string) error {
	return leaseExec(ctx, db, "fail", l, `
UPDATE handoffs SET status = 'failed', last_error = $4, claimed_by = NULL, claim_deadline = NULL,
    finished_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE `+leaseWhere, reason)
}

// Extend pushes the claim deadline of every handoff owner holds to now +
// claimTimeout (a heartbeat: a live consumer keeps its claims, a dead one
// stops extending them). It returns how many rows it extended.
func Extend(ctx context.Context, db DB, owner string, claimTimeout time.Duration) (int64, error) {
	tag, err := db.Exec(ctx, `
UPDATE handoffs SET claim_deadline = clock_timestamp() + $2 * interval '1 microsecond', updated_at = clock_timestamp()
WHERE status = 'claimed' AND claimed_by = $1`, owner, micros(claimTimeout))
	if err != nil {
		return 0, fmt.Errorf("extend handoff claims: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Rescued is what Rescue did.
type Rescued struct {
	// Requeued rows are pending again, due now.
	Requeued []int64
	// Failed rows reached maxErrors consecutive errors.
	Failed []int64
}

// Rescue returns every claimed row whose claim deadline has passed to the
// queue, due at once, counting the lost claim as an error; a row that
// reaches maxErrors consecutive errors (maxErrors > 0) is failed instead,
// so a handoff that kills its consumer every time cannot loop forever.
func Rescue(ctx context.Context, db DB, maxErrors int) (Rescued, error) {
	rows, err := db.Query(ctx, `
WITH expired AS (
    SELECT id FROM handoffs
    WHERE status = 'claimed' AND claim_deadline < clock_timestamp()
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE handoffs h SET
    status = CASE WHEN $1 > 0 AND h.consecutive_errors + 1 >= $1 THEN 'failed' ELSE 'pending' END,
    finished_at = CASE WHEN $1 > 0 AND h.consecutive_errors + 1 >= $1 THEN clock_timestamp() END,
    last_error = 'claim by ' || h.claimed_by || ' expired', consecutive_errors = h.consecutive_errors + 1,
    claimed_by = NULL, claim_deadline = NULL, next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
FROM expired WHERE h.id = expired.id
RETURNING h.id, h.status`, maxErrors)
	if err != nil {
		return Rescued{}, fmt.Errorf("rescue handoffs: %w", err)
	}
	var out Rescued
	var (
		id int64
		st string
	)
	_, err = pgx.ForEachRow(rows, []any{&id, &st}, func() error {
		if Status(st) == StatusFailed {
			out.Failed = append(out.Failed, id)
		} else {
			out.Requeued = append(out.Requeued, id)
		}
		return nil
	})
	if err != nil {
		return Rescued{}, fmt.Errorf("rescue handoffs: %w", err)
	}
	slices.Sort(out.Requeued)
	slices.Sort(out.Failed)
	return out, nil
}

// Requeue returns a parked or failed handoff to the queue, due now, with its
// error count reset, and signals Channel (delivered when db's transaction,
// if any, commits). ErrNotFound and ErrNotRequeueable report the obvious.
func Requeue(ctx context.Context, db DB, id int64) (Handoff, error) {
	h, err := scan(db.QueryRow(ctx, `
WITH r AS (
    UPDATE handoffs SET status = 'pending', parked_reason = NULL, consecutive_errors = 0, finished_at = NULL,
        next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
    WHERE id = $1 AND status IN ('parked', 'failed')
    RETURNING *
)
SELECT `+columns+` FROM r, LATERAL (SELECT pg_notify('`+Channel+`', r.id::text)) n`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := Get(ctx, db, id)
		if gerr != nil {
			return Handoff{}, gerr
		}
		return cur, fmt.Errorf("requeue handoff %d (%s): %w", id, cur.Status, ErrNotRequeueable)
	}
	if err != nil {
		return Handoff{}, fmt.Errorf("requeue handoff %d: %w", id, err)
	}
	return h, nil
}

// WakeParked makes every row parked for reason due now (for example the
// unroutable ones after a consumer starts with a routable configuration)
// and returns how many it woke.
func WakeParked(ctx context.Context, db DB, reason ParkReason) (int64, error) {
	tag, err := db.Exec(ctx, `
UPDATE handoffs SET next_attempt_at = clock_timestamp(), updated_at = clock_timestamp()
WHERE status = 'parked' AND parked_reason = $1 AND next_attempt_at > clock_timestamp()`, string(reason))
	if err != nil {
		return 0, fmt.Errorf("wake parked handoffs: %w", err)
	}
	return tag.RowsAffected(), nil
}

// Get returns one queue row.
func Get(ctx context.Context, db DB, id int64) (Handoff, error) {
	h, err := scan(db.QueryRow(ctx, `SELECT `+columns+` FROM handoffs WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Handoff{}, fmt.Errorf("get handoff %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return Handoff{}, fmt.Errorf("get handoff %d: %w", id, err)
	}
	return h, nil
}

// GetByEvent returns the queue row of a handoff_prepared event.
func GetByEvent(ctx context.Context, db DB, handoffEventID int64) (Handoff, error) {
	h, err := scan(db.QueryRow(ctx, `SELECT `+columns+` FROM handoffs WHERE handoff_event_id = $1`, handoffEventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return Handoff{}, fmt.Errorf("get handoff of event %d: %w", handoffEventID, ErrNotFound)
	}
	if err != nil {
		return Handoff{}, fmt.Errorf("get handoff of event %d: %w", handoffEventID, err)
	}
	return h, nil
}

// ListOptions filters List.
type ListOptions struct {
	// Statuses keeps only these states; empty means all.
	Statuses []Status
	// AfterID keeps only rows with a larger id (paging).
	AfterID int64
	// DisputeID keeps only the rows of this dispute; empty means all.
	DisputeID string
	// Limit caps the result; <= 0 means 100.
	Limit int
}

// List returns queue rows by id.
func List(ctx context.Context, db DB, opts ListOptions) ([]Handoff, error) {
	limit := opts.Limit
	if limit <= 0 {
		limit = 100
	}
	statuses := make([]string, 0, len(opts.Statuses))
	for _, s := range opts.Statuses {
		statuses = append(statuses, string(s))
	}
	out, err := collect(db.Query(ctx, `
SELECT `+columns+` FROM handoffs
WHERE id > $1 AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[])) AND ($4 = '' OR dispute_id = $4)
ORDER BY id LIMIT $3`, opts.AfterID, statuses, limit, opts.DisputeID))
	if err != nil {
		return nil, fmt.Errorf("list handoffs: %w", err)
	}
	return out, nil
}

// Stats is a snapshot of the queue.
type Stats struct {
	// ByStatus counts rows per state except done (which only grows; every
	// other state is present, maybe 0).
	ByStatus map[Status]int64
	// Due counts pending and parked rows whose time has come.
	Due int64
	// OldestDueAge is how long the oldest due row has been due (0 when
	// none is).
	OldestDueAge time.Duration
}

// QueueStats returns a snapshot of the queue. It reads only live rows (an
// index range), so it stays cheap however many done rows accumulate.
func QueueStats(ctx context.Context, db DB) (Stats, error) {
	st := Stats{ByStatus: map[Status]int64{
		StatusPending: 0, StatusClaimed: 0, StatusParked: 0, StatusFailed: 0,
	}}
	rows, err := db.Query(ctx, `SELECT status, count(*) FROM handoffs WHERE status IN ('pending', 'claimed', 'parked', 'failed') GROUP BY status`)
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	var (
		status string
		n      int64
	)
	if _, err := pgx.ForEachRow(rows, []any{&status, &n}, func() error {
		st.ByStatus[Status(status)] = n
		return nil
	}); err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	var oldestMicros *int64
	err = db.QueryRow(ctx, `
SELECT count(*), (extract(epoch FROM clock_timestamp() - min(next_attempt_at)) * 1e6)::bigint
FROM handoffs WHERE status IN ('pending', 'parked') AND next_attempt_at <= clock_timestamp()`).Scan(&st.Due, &oldestMicros)
	if err != nil {
		return Stats{}, fmt.Errorf("queue stats: %w", err)
	}
	if oldestMicros != nil {
		st.OldestDueAge = time.Duration(*oldestMicros) * time.Microsecond
	}
	return st, nil
}

// NextDueIn returns how long until the next row becomes due or the next
// claim expires: 0 when one already is, -1 when nothing is scheduled. It is
// what a consumer sleeps at most before claiming again.
func NextDueIn(ctx context.Context, db DB) (time.Duration, error) {
	var next *int64
	err := db.QueryRow(ctx, `
SELECT (extract(epoch FROM least(
    (SELECT min(next_attempt_at) FROM handoffs WHERE status IN ('pending', 'parked')),
    (SELECT min(claim_deadline) FROM handoffs WHERE status = 'claimed')) - clock_timestamp()) * 1e6)::bigint`).Scan(&next)
	if err != nil {
		return 0, fmt.Errorf("next handoff due: %w", err)
	}
	switch {
	case next == nil:
		return -1, nil
	case *next > 0:
		return time.Duration(*next) * time.Microsecond, nil
	default:
		return 0, nil
	}
}

// String renders a lease as "<id>/<attempt>" for logs.
func (l Lease) String() string {
	return strconv.FormatInt(l.ID, 10) + "/" + strconv.Itoa(l.Attempt)
}

package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

// memSender is an in-memory relaygw for tests that need cheap or faulty
// sends: it keeps relaygw's idempotency contract (a repeated key returns the
// first outcome with duplicate set and delivers nothing new) and records
// every delivered body per recipient.
type memSender struct {
	mu        sync.Mutex
	outcomes  map[string]*relaygwv1.SendDirectMessageResponse
	inbox     map[string][]string // hex pubkey -> bodies
	delivered chan string         // recipient hex, per delivered DM (buffered, optional)
	calls     int
	// fail, when set, may turn a call into a gRPC error.
	fail func(req *relaygwv1.SendDirectMessageRequest) error
	// refuse lists recipients no relay accepts (delivered=false).
	refuse map[string]bool
	// hook runs for every call before anything else (benchmarks, crashes).
	hook func(ctx context.Context, req *relaygwv1.SendDirectMessageRequest) error
}

func newMemSender() *memSender {
	return &memSender{
		outcomes: map[string]*relaygwv1.SendDirectMessageResponse{},
		inbox:    map[string][]string{},
		refuse:   map[string]bool{},
	}
}

func (s *memSender) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest, _ ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error) {
	if s.hook != nil {
		if err := s.hook(ctx, req); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	pk, err := nostrkey.Normalize(req.GetRecipientPubkey())
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "recipient_pubkey: %v", err)
	}
	if req.GetIdempotencyKey() == "" {
		return nil, status.Error(codes.InvalidArgument, "idempotency_key is required")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.fail != nil {
		if err := s.fail(req); err != nil {
			return nil, err
		}
	}
	if prev, ok := s.outcomes[req.GetIdempotencyKey()]; ok && prev.GetDelivered() {
		return &relaygwv1.SendDirectMessageResponse{EventId: prev.GetEventId(), Delivered: true, Duplicate: true}, nil
	}
	resp := &relaygwv1.SendDirectMessageResponse{EventId: fmt.Sprintf("wrap-%d", s.calls), Delivered: !s.refuse[pk]}
	if resp.Delivered {
		resp.Results = []*relaygwv1.PublishResult{{RelayUrl: "ws://mem", Outcome: relaygwv1.PublishOutcome_PUBLISH_OUTCOME_ACCEPTED}}
		s.inbox[pk] = append(s.inbox[pk], req.GetBody())
		if s.delivered != nil {
			s.delivered <- pk
		}
	} else {
		resp.Results = []*relaygwv1.PublishResult{{RelayUrl: "ws://mem", Outcome: relaygwv1.PublishOutcome_PUBLISH_OUTCOME_REJECTED, Message: "blocked"}}
	}
	s.outcomes[req.GetIdempotencyKey()] = resp
	return resp, nil
}

// Bodies returns the DMs delivered to pubkey (hex).
func (s *memSender) Bodies(pubkey string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.inbox[pubkey]...)
}

// Total is the number of DMs delivered to anyone.
func (s *memSender) Total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.inbox {
		n += len(b)
	}
	return n
}

// dbIntake stands in for intakesvc's GetDispute: it answers from the test
// database's disputes table (which intakesvc owns; the tests seed it, and
// the dispatch rows reference it), with intakesvc's error codes: NotFound
// for no row, Internal for a database error. down, when set, makes every
// call fail as an unreachable intakesvc does.
type dbIntake struct {
	pool  *pgxpool.Pool
	mu    sync.Mutex
	down  bool
	calls int
}

func (i *dbIntake) GetDispute(ctx context.Context, req *intakesvcv1.GetDisputeRequest, _ ...grpc.CallOption) (*intakesvcv1.GetDisputeResponse, error) {
	i.mu.Lock()
	i.calls++
	down := i.down
	i.mu.Unlock()
	if down {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	if req.GetDisputeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "dispute_id is required")
	}
	var (
		state    string
		assigned *string
	)
	err := i.pool.QueryRow(ctx, `SELECT lifecycle_state, assigned_solver FROM disputes WHERE dispute_id = $1`, req.GetDisputeId()).Scan(&state, &assigned)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, status.Errorf(codes.NotFound, "dispute %q not found", req.GetDisputeId())
	case err != nil:
		return nil, status.Error(codes.Internal, "internal error")
	}
	ls := intakesvcv1.LifecycleState_value["LIFECYCLE_STATE_"+strings.ToUpper(state)]
	return &intakesvcv1.GetDisputeResponse{Dispute: &intakesvcv1.Dispute{
		DisputeId: req.GetDisputeId(), LifecycleState: intakesvcv1.LifecycleState(ls), AssignedSolver: deref(assigned),
	}}, nil
}

func (i *dbIntake) setDown(down bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.down = down
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// env is one test's database and helpers.
type env struct {
	t      testing.TB
	db     *pgdbtest.DB
	pool   *pgxpool.Pool
	ctx    context.Context
	intake *dbIntake
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db := pgdbtest.NewDB(t)
	return &env{t: t, db: db, pool: db.Pool, ctx: context.Background(), intake: &dbIntake{pool: db.Pool}}
}

// dispute seeds a disputes row.
func (e *env) dispute(id, state string, assigned *string) {
	e.t.Helper()
	_, err := e.pool.Exec(e.ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state, assigned_solver)
VALUES ($1, 'ev-' || $1, 'mostro', 'buyer', 1, 1, $2, $3)`, id, state, assigned)
	require.NoError(e.t, err)
}

// setState changes a dispute's lifecycle state as intakesvc, or an
// operator's correction (resolved -> notified, with the override the
// lifecycle guard trigger accepts), would.
func (e *env) setState(id, state string) {
	e.t.Helper()
	require.NoError(e.t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(e.ctx, `SET LOCAL serbero.lifecycle_override = 'on'`); err != nil {
			return err
		}
		_, err := tx.Exec(e.ctx, `UPDATE disputes SET lifecycle_state = $2 WHERE dispute_id = $1`, id, state)
		return err
	}))
}

// session seeds a mediation session in escalation_recommended (for the FK).
func (e *env) session(disputeID, sessionID string) {
	e.t.Helper()
	_, err := e.pool.Exec(e.ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ($1, $2, 'escalation_recommended', 'phase3-default', 'hash-1', 1, 1)`, sessionID, disputeID)
	require.NoError(e.t, err)
}

func samplePkg(disputeID, sessionID string) handoff.Package {
	return handoff.Package{
		DisputeID: disputeID, SessionID: sessionID, Trigger: "conflicting_claims", EvidenceRefs: []string{},
		PromptBundleID: "phase3-default", PolicyHash: "hash-1", RationaleRefs: []string{"9f86d081884c"}, AssembledAt: 1745000000,
	}
}

// handoff enqueues a package as mediationsvc would.
func (e *env) handoff(p handoff.Package) handoff.Enqueued {
	e.t.Helper()
	var out handoff.Enqueued
	require.NoError(e.t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		out, err = handoff.Enqueue(e.ctx, tx, p, handoff.Meta{OccurredAt: 100})
		return err
	}))
	return out
}

// rawHandoff enqueues a verbatim payload (bundle columns as the reference
// harness seeds them).
func (e *env) rawHandoff(payload string) handoff.Enqueued {
	e.t.Helper()
	bundle, hash := "phase3-default", "hash-1"
	var out handoff.Enqueued
	require.NoError(e.t, pgx.BeginFunc(e.ctx, e.pool, func(tx pgx.Tx) error {
		var err error
		out, err = handoff.EnqueueRaw(e.ctx, tx, payload, handoff.RawMeta{PromptBundleID: &bundle, PolicyHash: &hash, OccurredAt: 100})
		return err
	}))
	return out
}

// count runs a count query.
func (e *env) count(sql string, args ...any) int {
	e.t.Helper()
	var n int
	require.NoError(e.t, e.pool.QueryRow(e.ctx, sql, args...).Scan(&n))
	return n
}

// dispatchRow is an escalation_dispatches row.
type dispatchRow struct {
	DispatchID, DisputeID, TargetSolver, Status string
	SessionID                                   *string
	HandoffEventID                              int64
	DispatchedAt, CreatedAt                     int64
	FallbackBroadcast                           int
}

func (e *env) dispatches() []dispatchRow {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT dispatch_id, dispute_id, session_id, handoff_event_id, target_solver, dispatched_at, created_at, status, fallback_broadcast
FROM escalation_dispatches ORDER BY handoff_event_id`)
	require.NoError(e.t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (dispatchRow, error) {
		var d dispatchRow
		err := r.Scan(&d.DispatchID, &d.DisputeID, &d.SessionID, &d.HandoffEventID, &d.TargetSolver, &d.DispatchedAt, &d.CreatedAt, &d.Status, &d.FallbackBroadcast)
		return d, err
	})
	require.NoError(e.t, err)
	return out
}

// auditRow is a mediation_events row.
type auditRow struct {
	ID                                           int64
	SessionID, RationaleID, PromptBundleID, Hash *string
	Payload                                      string
	OccurredAt                                   int64
}

func (e *env) audits(kind audit.Kind) []auditRow {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT id, session_id, payload_json::text, rationale_id, prompt_bundle_id, policy_hash, occurred_at
FROM mediation_events WHERE kind = $1 ORDER BY id`, string(kind))
	require.NoError(e.t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (auditRow, error) {
		var a auditRow
		err := r.Scan(&a.ID, &a.SessionID, &a.Payload, &a.RationaleID, &a.PromptBundleID, &a.Hash, &a.OccurredAt)
		return a, err
	})
	require.NoError(e.t, err)
	return out
}

// notificationRow is a notifications row.
type notificationRow struct {
	DisputeID, Solver, Status, NotifType string
	Error                                *string
	SentAt                               int64
}

func (e *env) notifications() []notificationRow {
	e.t.Helper()
	rows, err := e.pool.Query(e.ctx, `SELECT dispute_id, solver_pubkey, sent_at, status, error_message, notif_type FROM notifications ORDER BY id`)
	require.NoError(e.t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (notificationRow, error) {
		var n notificationRow
		err := r.Scan(&n.DisputeID, &n.Solver, &n.SentAt, &n.Status, &n.Error, &n.NotifType)
		return n, err
	})
	require.NoError(e.t, err)
	return out
}

func (e *env) queueRow(id int64) handoff.Handoff {
	e.t.Helper()
	h, err := handoff.Get(e.ctx, e.pool, id)
	require.NoError(e.t, err)
	return h
}

// dispatcher builds a dispatcher on the env's pool. Parked handoffs are due
// again at once, so each RunOnce is one reference cycle re-evaluating them.
func (e *env) dispatcher(sender Sender, solvers []config.SolverConfig, fallback bool, mod ...func(*Options)) *Dispatcher {
	opts := Options{
		Pool: e.pool, Sender: sender, Disputes: e.intake, Solvers: solvers, FallbackToAllSolvers: fallback,
		PollInterval: time.Second, ClaimTimeout: 30 * time.Second,
		ParkBackoff:  func(int) time.Duration { return 0 },
		RetryBackoff: func(int) time.Duration { return 0 },
	}
	for _, m := range mod {
		m(&opts)
	}
	return New(opts)
}

// cycle runs one dispatcher cycle.
func (e *env) cycle(d *Dispatcher) int {
	e.t.Helper()
	n, err := d.RunOnce(e.ctx)
	require.NoError(e.t, err)
	return n
}

func writeSolver(pk string) config.SolverConfig {
	return config.SolverConfig{Pubkey: pk, Permission: config.PermissionWrite}
}

func readSolver(pk string) config.SolverConfig {
	return config.SolverConfig{Pubkey: pk, Permission: config.PermissionRead}
}

// key returns a distinct valid public key per n (that of secret key n+1).
func key(n int) string {
	pk, err := nostr.GetPublicKey(fmt.Sprintf("%064x", n+1))
	if err != nil {
		panic(err)
	}
	return pk
}

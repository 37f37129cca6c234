package systest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
)

// Phases 1 and 2 over processes: every dispute reaches every solver once
// with the exact initial body; in-progress gives every solver the
// assignment DM; settled resolves the dispute and sends nothing.
func TestDisputeLifecycle(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{})
	n := disputes(t)

	ids := make([]string, n)
	want := map[string]string{}
	for i := range n {
		ids[i] = fmt.Sprintf("d-life-%03d", i)
		initiator := []string{"buyer", "seller"}[i%2]
		at := s.OpenDispute(ids[i], initiator)
		want[ids[i]] = initialBody(ids[i], initiator, at)
	}
	for _, sv := range s.Solvers {
		msgs := sv.WaitFor(n, stall)
		for _, m := range msgs {
			k := classify(m.Body)
			require.Equal(t, want[k.dispute], m.Body)
			require.Equal(t, s.serbero.PublicKey(), m.From, "sealed by Serbero's key")
		}
		requireOnce(t, sv.Messages(), kindInitial, ids)
	}
	s.WaitCount(n, `SELECT count(*) FROM disputes WHERE lifecycle_state = 'notified'`)

	for _, id := range ids {
		s.Mostro.TakeOver(id, keys.Generate().PublicKey()) // a human solver took it in Mostro
	}
	for _, sv := range s.Solvers {
		msgs := sv.WaitFor(2*n, stall)[n:]
		for _, m := range msgs {
			k := classify(m.Body)
			require.Equal(t, assignmentBody(k.dispute, "unknown"), m.Body)
		}
		requireOnce(t, sv.Messages()[n:], kindAssignment, ids)
	}
	s.WaitState(ids[n-1], intakesvcv1.LifecycleState_LIFECYCLE_STATE_TAKEN)
	s.WaitCount(n, `SELECT count(*) FROM disputes WHERE lifecycle_state = 'taken'`)

	for _, id := range ids {
		s.Mostro.SetStatus(id, mostro.DisputeStatus("settled"))
	}
	got := s.WaitState(ids[n-1], intakesvcv1.LifecycleState_LIFECYCLE_STATE_RESOLVED)
	require.Equal(t, "settled", got.GetDispute().GetDisputeStatus())
	s.WaitCount(n, `SELECT count(*) FROM disputes WHERE lifecycle_state = 'resolved' AND dispute_status = 'settled'`)
	for _, sv := range s.Solvers {
		sv.AssertNoMessagesBeyond(2*n, quiet)
	}
	require.Equal(t, 2*n*len(s.Solvers), s.Count(`SELECT count(*) FROM notifications WHERE status = 'sent'`))
	require.Equal(t, n, s.Count(`SELECT count(*) FROM dispute_state_transitions WHERE to_state = 'resolved' AND trigger = 'dispute_resolved_externally'`))
}

// requireOnce asserts that msgs hold exactly one DM of kind for each of
// ids, and nothing else.
func requireOnce(t *testing.T, msgs []fakesolver.Message, kind string, ids []string) {
	t.Helper()
	got := map[dmKey]int{}
	for _, m := range msgs {
		got[classify(m.Body)]++
	}
	want := map[dmKey]int{}
	for _, id := range ids {
		want[dmKey{kind, id}] = 1
	}
	require.Equal(t, want, got, "one %s DM per dispute", kind)
}

// ctx returns a context bounded for one RPC.
func rpcCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Re-notification over two intakesvc processes: a dispute nobody takes
// is re-announced to every solver once per period (never twice in one
// period, whichever replica's timer fires), each DM the body recorded for
// its period; once taken, it is never re-notified again.
func TestRenotificationOncePerPeriod(t *testing.T) {
	t.Parallel()
	const period = 2
	s := Start(t, Options{Solvers: []string{"write", "read"}, Replicas: map[string]int{intakesvc: 2},
		RenotifySeconds: period, RenotifyCheckSeconds: 1})
	const d = "d-renotify"
	at := s.OpenDispute(d, "buyer")
	for _, sv := range s.Solvers {
		require.Equal(t, initialBody(d, "buyer", at), sv.WaitFor(1, stall)[0].Body)
	}
	// Two periods pass unattended.
	for _, sv := range s.Solvers {
		for _, m := range sv.WaitFor(3, stall)[1:] {
			require.Equal(t, dmKey{kindRenotify, d}, classify(m.Body))
		}
	}
	s.Mostro.TakeOver(d, keys.Generate().PublicKey())
	s.WaitState(d, intakesvcv1.LifecycleState_LIFECYCLE_STATE_TAKEN)
	// Sends queued before the take may still land; then the assignment.
	// After that, ticks keep running (every second) and send nothing.
	for _, sv := range s.Solvers {
		require.Eventually(t, func() bool { return tally(sv)[dmKey{kindAssignment, d}] == 1 }, stall, 20*time.Millisecond)
	}
	settled := make([]int, len(s.Solvers))
	for i, sv := range s.Solvers {
		settled[i] = len(sv.Messages())
	}
	for i, sv := range s.Solvers {
		sv.AssertNoMessagesBeyond(settled[i], 2*period*time.Second)
	}

	// Each solver's re-notifications are exactly the periods' delivered
	// jobs: one per period, with that period's body.
	rows, err := s.db.Pool.Query(context.Background(), `SELECT solver_pubkey, period, batch_at, body FROM intake_notification_jobs
		WHERE dispute_id = $1 AND notif_type = 're-notification' AND outcome = 'sent' ORDER BY period`, d)
	require.NoError(t, err)
	sent := map[string][]string{}
	periods := map[int64]int64{} // period -> batch_at
	for rows.Next() {
		var pk, body string
		var p, batchAt int64
		require.NoError(t, rows.Scan(&pk, &p, &batchAt, &body))
		require.Equal(t, renotificationBody(d, batchAt-at), body)
		sent[pk] = append(sent[pk], body)
		periods[p] = batchAt
	}
	require.NoError(t, rows.Err())
	require.GreaterOrEqual(t, len(periods), 2)
	for i, sv := range s.Solvers {
		var got []string
		for _, m := range sv.Messages() {
			if classify(m.Body).kind == kindRenotify {
				got = append(got, m.Body)
			}
		}
		require.Equal(t, sent[sv.Pubkey()], got, "solver %d: one re-notification per period, in order", i)
	}
	// Consecutive periods are at least one renotification_seconds apart.
	var prev int64
	for p := range len(periods) + 1 {
		batchAt, ok := periods[int64(p)]
		if !ok {
			continue
		}
		if prev != 0 {
			require.GreaterOrEqual(t, batchAt-prev, int64(period), "period %d came %ds after the previous one", p, batchAt-prev)
		}
		prev = batchAt
	}
}

// Phase 4 over processes: a handoff enqueued through pkg/handoff (as
// mediationsvc does) produces the escalation_handoff/v1 DM at the write
// solver only, once.
func TestHandoffReachesTheWriteSolver(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{}) // write, read, read
	const d = "d-escalate"
	s.OpenDispute(d, "seller")
	for _, sv := range s.Solvers {
		sv.WaitFor(1, stall)
	}
	s.WaitState(d, intakesvcv1.LifecycleState_LIFECYCLE_STATE_NOTIFIED)

	pkg := handoff.Package{DisputeID: d, Trigger: "conflicting_claims", EvidenceRefs: []string{"ev-1"},
		PromptBundleID: "phase3-default", PolicyHash: "abc123", AssembledAt: 1_700_000_000}
	ctx := context.Background()
	require.NoError(t, pgx.BeginFunc(ctx, s.db.Pool, func(tx pgx.Tx) error {
		_, err := handoff.Enqueue(ctx, tx, pkg, handoff.Meta{})
		return err
	}))
	payload := `{"dispute_id":"d-escalate","trigger":"conflicting_claims","evidence_refs":["ev-1"],` +
		`"prompt_bundle_id":"phase3-default","policy_hash":"abc123","rationale_refs":[],"assembled_at":1700000000}`
	msg := s.Solvers[0].WaitFor(2, stall)[1]
	require.Equal(t, escalationBody(d, "conflicting_claims", payload), msg.Body)
	require.Equal(t, s.serbero.PublicKey(), msg.From)
	s.WaitCount(1, `SELECT count(*) FROM handoffs WHERE dispute_id = $1 AND status = 'done'`, d)
	require.Equal(t, 1, s.Count(`SELECT count(*) FROM escalation_dispatches WHERE dispute_id = $1`, d))
	for _, sv := range s.Solvers[1:] {
		sv.AssertNoMessagesBeyond(1, quiet) // read solvers get no escalation
	}
	s.Solvers[0].AssertNoMessagesBeyond(2, quiet)
}

// authsvc's CurrentState answers over gRPC with the service token; every
// service refuses a request without the token, or with a wrong one, and
// answers health checks without one.
func TestCurrentStateAndCredentials(t *testing.T) {
	t.Parallel()
	s := Start(t, Options{Solvers: []string{"write"}})

	st, err := s.Auth().CurrentState(rpcCtx(t), &authsvcv1.CurrentStateRequest{})
	require.NoError(t, err)
	require.NotEqual(t, authsvcv1.AuthorizationState_AUTHORIZATION_STATE_UNSPECIFIED, st.GetState().GetState())
	require.Positive(t, st.GetState().GetVersion())

	calls := map[string]func(conn *grpc.ClientConn) error{
		relaygw: func(conn *grpc.ClientConn) error {
			r, err := relaygwv1.NewRelayGatewayServiceClient(conn).GetIdentity(rpcCtx(t), &relaygwv1.GetIdentityRequest{})
			if err == nil && r.GetPubkeyHex() != s.serbero.PublicKey() {
				return fmt.Errorf("relaygw identity %s, want %s", r.GetPubkeyHex(), s.serbero.PublicKey())
			}
			return err
		},
		intakesvc: func(conn *grpc.ClientConn) error {
			_, err := intakesvcv1.NewIntakeServiceClient(conn).ListDisputes(rpcCtx(t), &intakesvcv1.ListDisputesRequest{})
			return err
		},
		authsvc: func(conn *grpc.ClientConn) error {
			_, err := authsvcv1.NewAuthServiceClient(conn).CurrentState(rpcCtx(t), &authsvcv1.CurrentStateRequest{})
			return err
		},
		escalationsvc: func(conn *grpc.ClientConn) error {
			_, err := escalationsvcv1.NewEscalationServiceClient(conn).ListHandoffs(rpcCtx(t), &escalationsvcv1.ListHandoffsRequest{})
			return err
		},
	}
	for svc, call := range calls {
		addr := s.Procs[svc][0].Addr
		require.NoError(t, call(s.Dial(addr, s.token)), "%s with the token", svc)
		for name, token := range map[string]string{"no token": "", "wrong token": randomHex(t, 32)} {
			err := call(s.Dial(addr, token))
			require.Equal(t, codes.Unauthenticated, status.Code(err), "%s with %s: %v", svc, name, err)
		}
		resp, err := healthpb.NewHealthClient(s.Dial(addr, "")).Check(rpcCtx(t), &healthpb.HealthCheckRequest{})
		require.NoError(t, err, "%s health without a token", svc)
		require.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	}
}

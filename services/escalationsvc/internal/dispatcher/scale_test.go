package dispatcher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
)

// seedHandoffs creates n disputes (notified) and one dispute-scoped
// handoff each, in one transaction per 100 (as fast as a test can).
func seedHandoffs(t testing.TB, e *env, n int) {
	t.Helper()
	ctx := context.Background()
	_, err := e.pool.Exec(ctx, `INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at, lifecycle_state)
SELECT 'd-' || i, 'ev-' || i, 'mostro', 'buyer', 1, 1, 'notified' FROM generate_series(0, $1 - 1) i`, n)
	require.NoError(t, err)
	for start := 0; start < n; start += 100 {
		tx, err := e.pool.Begin(ctx)
		require.NoError(t, err)
		for i := start; i < min(start+100, n); i++ {
			_, err := handoff.Enqueue(ctx, tx, samplePkg(fmt.Sprintf("d-%d", i), ""), handoff.Meta{OccurredAt: 100})
			require.NoError(t, err)
		}
		require.NoError(t, tx.Commit(ctx))
	}
}

// victimSender is the sender of the replica that gets killed: after
// passThrough calls it hangs until the replica's context ends, half of the
// time after relaying the DM (a crash after the relay accepted the DM and
// before the dispatch was recorded), half of the time before.
type victimSender struct {
	next        Sender
	passThrough int64
	calls       atomic.Int64
	hung        chan struct{} // one value per hung call
}

func (v *victimSender) SendDirectMessage(ctx context.Context, req *relaygwv1.SendDirectMessageRequest, opts ...grpc.CallOption) (*relaygwv1.SendDirectMessageResponse, error) {
	n := v.calls.Add(1)
	if n <= v.passThrough {
		return v.next.SendDirectMessage(ctx, req, opts...)
	}
	if n%2 == 0 {
		if _, err := v.next.SendDirectMessage(ctx, req, opts...); err != nil {
			return nil, err
		}
	}
	v.hung <- struct{}{}
	<-ctx.Done()
	return nil, status.FromContextError(ctx.Err()).Err()
}

// drainWithKill drains n handoffs with three replicas, each with its own
// pool, and kills one mid-drain without letting it release its claims.
// It returns the ids of the handoffs the victim held when it died.
func drainWithKill(t *testing.T, e *env, sender Sender, solvers []config.SolverConfig, n int) []int64 {
	t.Helper()
	seedHandoffs(t, e, n)
	// Long enough that the victim's heartbeat (every claim/3) cannot lapse
	// on a loaded machine before the test looks at what it holds.
	const claim = time.Second
	mk := func(pool *pgxpool.Pool, s Sender, owner string) *Dispatcher {
		return New(Options{
			Pool: pool, Sender: s, Disputes: &dbIntake{pool: pool}, Solvers: solvers, Owner: owner,
			PollInterval: 100 * time.Millisecond, ClaimTimeout: claim, Workers: 8,
		})
	}

	victim := &victimSender{next: sender, passThrough: int64(n / 10), hung: make(chan struct{}, n)}
	victimPool := e.db.OpenPool(t)
	victimCtx, kill := context.WithCancel(context.Background())
	victimDone := make(chan struct{})
	go func() {
		defer close(victimDone)
		_ = mk(victimPool, victim, "victim").Run(victimCtx)
	}()

	var wg sync.WaitGroup
	ctx, stop := context.WithCancel(context.Background())
	defer func() {
		stop()
		wg.Wait()
	}()
	for i := range 2 {
		d := mk(e.db.OpenPool(t), sender, fmt.Sprintf("survivor-%d", i))
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(ctx) }()
	}

	// Kill the victim while it holds claims: its sends hang, then its
	// database goes away (no release, no record), then it stops.
	for range 4 {
		select {
		case <-victim.hung:
		case <-time.After(30 * time.Second):
			t.Fatal("the victim never got to hang")
		}
	}
	victimPool.Close() // from now on the victim cannot touch its claims
	var held []int64
	rows, err := e.pool.Query(e.ctx, `SELECT id FROM handoffs WHERE status = 'claimed' AND claimed_by = 'victim'`)
	require.NoError(t, err)
	held, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.NotEmpty(t, held, "the victim holds claims when it dies")
	kill()
	select {
	case <-victimDone:
	case <-time.After(10 * time.Second):
		t.Fatal("the victim did not stop")
	}

	require.Eventually(t, func() bool {
		return e.count(`SELECT count(*) FROM handoffs WHERE status = 'done'`) == n
	}, 2*time.Minute, 50*time.Millisecond, "every handoff consumed")
	return held
}

// requireExactlyOnce checks every handoff has exactly one dispatch row
// (dispatched) and one notification, and that bodies (one per DM
// delivered) name every dispute exactly once.
func requireExactlyOnce(t *testing.T, e *env, bodies []string, n int) {
	t.Helper()
	require.Equal(t, n, e.count(`SELECT count(*) FROM escalation_dispatches WHERE status = 'dispatched'`))
	require.Equal(t, n, e.count(`SELECT count(DISTINCT handoff_event_id) FROM escalation_dispatches`))
	require.Equal(t, n, e.count(`SELECT count(*) FROM notifications WHERE status = 'sent' AND notif_type = 'escalation_handoff'`))
	require.Equal(t, n, e.count(`SELECT count(*) FROM mediation_events WHERE kind = 'escalation_dispatched'`))
	perDispute := map[string]int{}
	for _, b := range bodies {
		line := strings.SplitN(b, "\n", 3)[1]
		perDispute[strings.TrimPrefix(line, "Dispute: ")]++
	}
	require.Len(t, perDispute, n, "every handoff reached the solver")
	for id, c := range perDispute {
		require.Equal(t, 1, c, "DMs for %s", id)
	}
}

// Three replicas drain 1,000 handoffs; one is killed mid-drain and its
// claimed handoffs are dispatched by the others after the claim deadline.
// Every handoff is dispatched exactly once: one DM at the solver, one
// dispatch row.
func TestScaleThreeReplicasWithAKill(t *testing.T) {
	t.Parallel()
	for name, mk := range worlds() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			w := mk(t, e)
			s := w.solver()
			const n = 1000
			held := drainWithKill(t, e, w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, n)
			requireExactlyOnce(t, e, s.Expect(t, n), n)
			for _, id := range held {
				q := e.queueRow(id)
				require.Equal(t, handoff.StatusDone, q.Status)
				require.Equal(t, handoff.OutcomeDispatched, q.Outcome)
				require.GreaterOrEqual(t, q.Attempts, 2, "claimed again after the victim's claim expired")
			}
			t.Logf("victim held %d handoffs when killed; all dispatched by the survivors", len(held))
		})
	}
}

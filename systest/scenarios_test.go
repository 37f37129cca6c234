package systest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
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

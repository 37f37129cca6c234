package authsvc_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/services/authsvc"
)

const (
	logRecheck   = "solver authorization proof is old; re-checking on start"
	logContinues = "solver authorization state continues after start"
)

// What a pod restart does to the answer (docs/authorization.md#restarts):
// an Authorized answer whose proof is old is checked again, as on a fresh
// installation; a recent one stands, and so does a terminated cycle, until
// an operator resets it.
func TestRestartRule(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// authorize proves authorization through a's API and stops a.
	authorize := func(t *testing.T, db *pgdbtest.DB) *authsvcv1.AuthState {
		a := startInstance(t, db, "a", instanceOpts{relaygw: newFakeRelaygw(), tuning: fastTuning("a")})
		resp, err := a.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
			DisputeId: "d-1", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, ObservedAt: timestamppb.Now(),
		})
		require.NoError(t, err)
		require.Equal(t, stAuthorized, resp.GetState().GetState())
		a.stop()
		return resp.GetState()
	}
	// restart starts replica b and waits until it applied the start rule.
	restart := func(t *testing.T, db *pgdbtest.DB, mutate func(*authsvc.Config), msg string) (*instance, *logtest.Buffer) {
		log, logs := logtest.New()
		b := startInstance(t, db, "b", instanceOpts{relaygw: newFakeRelaygw(), tuning: fastTuning("b"), mutate: mutate, logger: log})
		require.Eventually(t, func() bool { return len(logs.Find(msg)) == 1 }, wait, 10*time.Millisecond, "%s", msg)
		return b, logs
	}

	t.Run("a recent proof stands", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		before := authorize(t, db)
		b, logs := restart(t, db, nil, logContinues) // the default re-check age is an hour
		require.Equal(t, "authorized", logs.Find(logContinues)[0].Str("state"))
		s := b.state(t)
		require.Equal(t, stAuthorized, s.GetState())
		require.Equal(t, before.GetVersion(), s.GetVersion(), "nothing changed")
		require.Empty(t, logs.Find(logRecheck))
	})

	t.Run("an old proof is checked again", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		authorize(t, db)
		old := func(c *authsvc.Config) { c.StartRecheckAfter = time.Nanosecond } // every proof is old
		b, _ := restart(t, db, old, logRecheck)
		// The fresh initial check: the node is reachable, nothing fresh is
		// known, a standing probe waits for the next take.
		require.Eventually(t, func() bool { return b.state(t).GetProbeId() != "" }, wait, 10*time.Millisecond)
		s := b.state(t)
		require.Equal(t, stUnknown, s.GetState())
		require.Equal(t, authsvcv1.EvidenceKind_EVIDENCE_KIND_NODE_REACHABLE, s.GetEvidence().GetKind())
		require.Nil(t, s.GetProbeDeadline(), "standing: a quiet node is not a failure")
		resp, err := b.client.ReportTakeOutcome(ctx, &authsvcv1.ReportTakeOutcomeRequest{
			DisputeId: "d-2", Outcome: authsvcv1.TakeOutcome_TAKE_OUTCOME_TOOK, ProbeId: s.GetProbeId(), ObservedAt: timestamppb.Now(),
		})
		require.NoError(t, err)
		require.Equal(t, stAuthorized, resp.GetState().GetState())
		require.Zero(t, auditCount(t, db, "auth_retry_attempt"))
		require.Zero(t, auditCount(t, db, "auth_retry_recovered"), "a re-check that passes is not a recovery")
	})

	t.Run("a terminated cycle waits for the operator", func(t *testing.T) {
		t.Parallel()
		db := pgdbtest.NewDB(t)
		rg := newFakeRelaygw()
		rg.set(func(f *fakeRelaygw) { f.version = 3 })
		twoAttempts := func(c *authsvc.Config) { c.RetryMaxAttempts = 2 }
		a := startInstance(t, db, "a", instanceOpts{relaygw: rg, tuning: fastTuning("a"), mutate: twoAttempts})
		require.Eventually(t, func() bool { return a.state(t).GetState() == stTerminated }, wait, 10*time.Millisecond)
		a.stop()

		b, logs := restart(t, db, func(c *authsvc.Config) { twoAttempts(c); c.StartRecheckAfter = time.Nanosecond }, logContinues)
		require.Equal(t, "terminated", logs.Find(logContinues)[0].Str("state"))
		require.Equal(t, stTerminated, b.state(t).GetState())
		require.Equal(t, 1, auditCount(t, db, "auth_retry_terminated"))
		_, err := b.client.ResetTerminated(ctx, &authsvcv1.ResetTerminatedRequest{})
		require.NoError(t, err, "serbero ctl auth reset starts a fresh cycle")
		require.Equal(t, stUnauthorized, b.state(t).GetState())
	})
}

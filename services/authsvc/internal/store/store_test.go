package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
	"github.com/serbero/serbero/services/authsvc/internal/store"
)

var t0 = time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)

func machine() revalidation.Machine {
	n := 0
	return revalidation.Machine{
		Config: revalidation.Config{
			InitialInterval: time.Minute, MaxInterval: time.Hour, MaxTotal: 24 * time.Hour, MaxAttempts: 3,
			ProbeWait: time.Minute, ClaimWait: 45 * time.Second,
		},
		NewID: func() string { n++; return fmt.Sprintf("p%d", n) },
	}
}

func newStore(t *testing.T) (*store.Store, *pgdbtest.DB) {
	db := pgdbtest.NewDB(t)
	return store.New(db.Pool), db
}

func TestInitialRow(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	st, err := s.Load(context.Background())
	require.NoError(t, err)
	require.Equal(t, revalidation.StatusUnknown, st.Status)
	require.Equal(t, int64(1), st.Version)
	require.False(t, st.NextAttemptAt.IsZero(), "the initial check is due")
	require.True(t, st.AttemptDue(time.Now()))
}

func TestApplyRoundTripsEveryField(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	m := machine()
	at := t0.Add(time.Minute)
	// Attempt 1 fails (audit row), then the loop's attempt 2 opens a claimed probe.
	applied, err := s.Apply(ctx, nil, t0, func(cur revalidation.State) revalidation.Result {
		return m.Step(cur, revalidation.TakeObserved{Evidence: revalidation.Evidence{
			Kind: revalidation.EvidenceCantDoInvalidPubkey, Summary: "cant-do invalid_pubkey", ObservedAt: t0, DisputeID: "d-1",
		}}, t0)
	})
	require.NoError(t, err)
	require.Empty(t, applied.AuditErrors)
	require.Equal(t, revalidation.StatusUnauthorized, applied.Result.State.Status)

	for _, in := range []revalidation.Input{
		revalidation.NodeChecked{Info: revalidation.NodeInfo{ProtocolVersion: 2}},
		revalidation.ClaimProbe{ProbeID: "p1", DisputeID: "d-2", ClaimerID: "mediationsvc-a"},
	} {
		_, err = s.Apply(ctx, nil, at, func(cur revalidation.State) revalidation.Result { return m.Step(cur, in, at) })
		require.NoError(t, err)
	}
	want := applied.Result.State
	got, err := s.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, revalidation.StatusUnauthorized, got.Status)
	require.Equal(t, 2, got.Attempt)
	require.Equal(t, time.Minute, got.CumulativeWait)
	require.Equal(t, "p1", got.Probe.ID)
	require.Equal(t, "d-2", got.Probe.DisputeID)
	require.Equal(t, "mediationsvc-a", got.Probe.ClaimerID)
	require.Equal(t, at.Add(45*time.Second), got.Probe.Deadline)
	require.Equal(t, at, got.Probe.ClaimedAt)
	require.Equal(t, want.Evidence, got.Evidence)
	require.Equal(t, want.Observation, got.Observation)
	require.Equal(t, want.Since, got.Since)
	require.Equal(t, want.LastAttemptAt, got.LastAttemptAt)
	require.True(t, got.NextAttemptAt.IsZero())
	require.Equal(t, want.Version+2, got.Version)

	var kind, payload string
	var session, bundle, policy *string
	var occurred int64
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT kind, payload_json::text, session_id, prompt_bundle_id, policy_hash, occurred_at
		FROM mediation_events`).Scan(&kind, &payload, &session, &bundle, &policy, &occurred))
	require.Equal(t, "auth_retry_attempt", kind)
	require.JSONEq(t, `{"attempt":1,"error":"cant-do invalid_pubkey"}`, payload)
	require.Nil(t, session)
	require.Nil(t, bundle)
	require.Nil(t, policy)
	require.Equal(t, t0.Unix(), occurred)
}

func TestFailedAuditWriteDoesNotBlockTheState(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `
		CREATE FUNCTION refuse_auth_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit table is read-only today'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON mediation_events FOR EACH ROW EXECUTE FUNCTION refuse_auth_audit();`)
	require.NoError(t, err)
	m := machine()
	applied, err := s.Apply(ctx, nil, t0, func(cur revalidation.State) revalidation.Result {
		return m.Step(cur, revalidation.LossReported{Reason: "x"}, t0)
	})
	require.NoError(t, err)
	require.Len(t, applied.AuditErrors, 1)
	require.ErrorContains(t, applied.AuditErrors[0], "auth_retry_attempt")
	got, err := s.Load(ctx)
	require.NoError(t, err)
	require.Equal(t, revalidation.StatusUnauthorized, got.Status, "the transition committed without its audit row")
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM mediation_events`).Scan(&n))
	require.Zero(t, n)
}

func TestRefusedInputWritesNothing(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	m := machine()
	applied, err := s.Apply(ctx, nil, t0, func(cur revalidation.State) revalidation.Result {
		return m.Step(cur, revalidation.Reset{}, t0)
	})
	require.NoError(t, err)
	require.ErrorIs(t, applied.Result.Err, revalidation.ErrNotTerminated)
	v, err := s.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(1), v)
}

func TestLease(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()

	termA, ok, err := s.AcquireLease(ctx, "a", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	_, ok, err = s.AcquireLease(ctx, "b", time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "held by a")
	again, ok, err := s.AcquireLease(ctx, "a", time.Hour)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, termA, again, "renewal keeps the term")

	// Fenced writes: a's term works, a stale term does not.
	m := machine()
	step := func(cur revalidation.State) revalidation.Result { return m.Step(cur, revalidation.Tick{}, t0) }
	_, err = s.Apply(ctx, &store.Fence{Holder: "a", Term: termA}, t0, step)
	require.NoError(t, err)
	_, err = s.Apply(ctx, &store.Fence{Holder: "a", Term: termA - 1}, t0, step)
	require.ErrorIs(t, err, store.ErrNotLeader)
	_, err = s.Apply(ctx, &store.Fence{Holder: "b", Term: termA}, t0, step)
	require.ErrorIs(t, err, store.ErrNotLeader)

	// Release hands over at once, with a new term.
	require.NoError(t, s.ReleaseLease(ctx, store.Fence{Holder: "a", Term: termA}))
	termB, ok, err := s.AcquireLease(ctx, "b", 200*time.Millisecond)
	require.NoError(t, err)
	require.True(t, ok)
	require.Greater(t, termB, termA)
	ok, err = s.RenewLease(ctx, store.Fence{Holder: "a", Term: termA}, time.Hour)
	require.NoError(t, err)
	require.False(t, ok, "a lost it")

	// b dies without releasing: the lease lapses and a takes it.
	require.Eventually(t, func() bool {
		term, ok, err := s.AcquireLease(ctx, "a", time.Hour)
		return err == nil && ok && term > termB
	}, 5*time.Second, 20*time.Millisecond)
	_, err = s.Apply(ctx, &store.Fence{Holder: "b", Term: termB}, t0, step)
	require.ErrorIs(t, err, store.ErrNotLeader, "the dead holder's late write is fenced off")
	l, err := s.CurrentLease(ctx)
	require.NoError(t, err)
	require.Equal(t, "a", l.Holder)
	require.True(t, l.Live)
}

// A committed change notifies Channel (listeners then re-read the version).
func TestApplyNotifiesTheChannel(t *testing.T) {
	t.Parallel()
	s, db := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := pglisten.New(pglisten.Options{ConnConfig: db.Pool.Config().ConnConfig})
	require.NoError(t, err)
	sub, err := l.Subscribe(store.Channel)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() { defer close(done); _ = l.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-sub.C(): // listening
	case <-time.After(10 * time.Second):
		t.Fatal("listener never connected")
	}
	m := machine()
	_, err = s.Apply(ctx, nil, t0, func(cur revalidation.State) revalidation.Result {
		return m.Step(cur, revalidation.LossReported{Reason: "x"}, t0)
	})
	require.NoError(t, err)
	select {
	case <-sub.C():
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	v, err := s.Version(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(2), v)
}

package changefeed_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/pglisten"
	"github.com/serbero/serbero/services/intakesvc/internal/changefeed"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

func TestBroadcastWakesEveryWaiterOnce(t *testing.T) {
	t.Parallel()
	b := changefeed.NewBroadcast()
	a, c := b.C(), b.C()
	b.Fire()
	for _, ch := range []<-chan struct{}{a, c} {
		select {
		case <-ch:
		default:
			t.Fatal("a waiter taken before Fire was not woken")
		}
	}
	next := b.C()
	select {
	case <-next:
		t.Fatal("a waiter taken after Fire is woken only by the next one")
	default:
	}
}

// A change committed by any writer wakes this process's readers through
// the LISTEN connection.
func TestCommittedChangesWakeReaders(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	st := store.New(db.Pool)
	l, err := pglisten.New(pglisten.Options{ConnConfig: db.Pool.Config().ConnConfig})
	require.NoError(t, err)
	sub, err := l.Subscribe(store.ChangesChannel)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	b := changefeed.NewBroadcast()
	listening := b.C()
	followed := make(chan struct{})
	go func() {
		defer close(followed)
		changefeed.Follow(ctx, sub.C(), b)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		<-followed
	})
	select {
	case <-listening: // the wake-up of the LISTEN itself
	case <-time.After(15 * time.Second):
		t.Fatal("the LISTEN never took place")
	}

	// Only the commit's NOTIFY can wake this one.
	wake := b.C()
	_, err = st.ApplyRevision(ctx, event.Revision{EventID: "e1", Pubkey: "m", CreatedAt: 1, DisputeID: "d", Status: "initiated",
		Initiator: "buyer"}, time.Unix(1_800_000_000, 0), func(*store.Dispute) store.Plan { return store.Plan{Insert: true} })
	require.NoError(t, err)
	select {
	case <-wake:
	case <-time.After(15 * time.Second):
		t.Fatal("the commit never woke the reader")
	}
}

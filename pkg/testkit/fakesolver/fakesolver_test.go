package fakesolver_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/pkg/testkit/relay"
)

const wait = 5 * time.Second

// wrapDM builds a NIP-17 DM with go-nostr's nip59, optionally bent.
func wrapDM(t *testing.T, senderSK, recipient, body string, kind int, pTag bool, wrapAt nostr.Timestamp) nostr.Event {
	t.Helper()
	senderPK, _ := nostr.GetPublicKey(senderSK)
	rumor := nostr.Event{Kind: kind, PubKey: senderPK, CreatedAt: nostr.Now(), Content: body, Tags: nostr.Tags{}}
	if pTag {
		rumor.Tags = append(rumor.Tags, nostr.Tag{"p", recipient})
	}
	rumor.ID = rumor.GetID()
	ck, err := nip44.GenerateConversationKey(recipient, senderSK)
	require.NoError(t, err)
	wrap, err := nip59.GiftWrap(rumor, recipient,
		func(s string) (string, error) { return nip44.Encrypt(s, ck) },
		func(e *nostr.Event) error { return e.Sign(senderSK) },
		func(e *nostr.Event) {
			if wrapAt != 0 {
				e.CreatedAt = wrapAt
			}
		})
	require.NoError(t, err)
	return wrap
}

func publish(t *testing.T, r *relay.Relay, e nostr.Event) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	require.NoError(t, r.Publish(ctx, e))
}

func TestSolverReadsDMs(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	sender := nostr.GeneratePrivateKey()
	senderPK, _ := nostr.GetPublicKey(sender)
	solverSK := nostr.GeneratePrivateKey()
	solverPK, _ := nostr.GetPublicKey(solverSK)

	// Back-dated by almost two days and published before the solver
	// listens: found in the store.
	publish(t, r, wrapDM(t, sender, solverPK, "stored", 14, true, nostr.Now()-47*3600))
	s := fakesolver.StartWithKey(t, solverSK, r.URL())
	require.Equal(t, solverPK, s.Pubkey())
	publish(t, r, wrapDM(t, sender, solverPK, "live", 14, true, 0))

	msgs := s.WaitFor(2, wait)
	require.ElementsMatch(t, []string{"stored", "live"}, []string{msgs[0].Body, msgs[1].Body})
	require.Equal(t, senderPK, msgs[0].From)
	require.Empty(t, s.Rejected())
	s.AssertNoMore(100 * time.Millisecond)
}

func TestSolverRejectsWhatNIP17ClientsReject(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	s := fakesolver.Start(t, r.URL())
	sender := nostr.GeneratePrivateKey()
	tests := []struct {
		name   string
		wrap   func() nostr.Event
		reason string
	}{
		{"RumorKind1", func() nostr.Event { return wrapDM(t, sender, s.Pubkey(), "k1", 1, true, 0) }, "rumor kind 1"},
		{"NoPTag", func() nostr.Event { return wrapDM(t, sender, s.Pubkey(), "nop", 14, false, 0) }, "no p tag"},
	}
	for i, tt := range tests {
		publish(t, r, tt.wrap())
		require.Eventually(t, func() bool { return len(s.Rejected()) == i+1 }, wait, 10*time.Millisecond, tt.name)
		require.Contains(t, s.Rejected()[i].Reason, tt.reason)
	}
	s.AssertNoMessagesBeyond(0, 50*time.Millisecond)
}

func TestSolverIgnoresDuplicateDeliveries(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	r.SetFaults(relay.Faults{Duplicate: relay.Any})
	s := fakesolver.Start(t, r.URL())
	publish(t, r, wrapDM(t, nostr.GeneratePrivateKey(), s.Pubkey(), "once", 14, true, 0))
	require.Equal(t, "once", s.WaitFor(1, wait)[0].Body)
	s.AssertNoMore(200 * time.Millisecond)
}

func TestSolverSurvivesRelayRestart(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	s := fakesolver.Start(t, r.URL())
	require.NoError(t, r.Restart(true))
	r.WaitSubscribed(t, wait, func(f nostr.Filter) bool { return len(f.Kinds) == 1 && f.Kinds[0] == nostr.KindGiftWrap })
	publish(t, r, wrapDM(t, nostr.GeneratePrivateKey(), s.Pubkey(), "after restart", 14, true, 0))
	require.Equal(t, "after restart", s.WaitFor(1, wait)[0].Body)
}

// failTB records a Fatalf and ends the goroutine, like testing.T does.
type failTB struct {
	testing.TB
	mu  sync.Mutex
	msg string
}

func (f *failTB) Helper() {}
func (f *failTB) Fatalf(format string, args ...any) {
	f.mu.Lock()
	f.msg = fmt.Sprintf(format, args...)
	f.mu.Unlock()
	runtime.Goexit()
}

func TestNegativeWaitsFailFast(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	ft := &failTB{TB: t}
	s := fakesolver.Start(ft, r.URL())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.AssertNoMessagesBeyond(0, time.Hour)
	}()
	publish(t, r, wrapDM(t, nostr.GeneratePrivateKey(), s.Pubkey(), "surprise", 14, true, 0))
	select {
	case <-done:
	case <-time.After(wait):
		t.Fatal("negative wait did not fail fast")
	}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	require.Contains(t, ft.msg, `"surprise"`)
}

func TestWaitForTimesOut(t *testing.T) {
	t.Parallel()
	r := relay.Start(t)
	ft := &failTB{TB: t}
	s := fakesolver.Start(ft, r.URL())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.WaitFor(1, 50*time.Millisecond)
	}()
	<-done
	ft.mu.Lock()
	defer ft.mu.Unlock()
	require.Contains(t, ft.msg, "got 0 messages")
}

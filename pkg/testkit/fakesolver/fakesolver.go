// Package fakesolver is a human solver for tests: a fresh key that listens
// for NIP-17 direct messages (kind 1059 gift wraps addressed to it),
// unwraps them with go-nostr's own NIP-59 code (an independent
// implementation, so a DM that reads here reads in real clients), checks
// what a NIP-17 client checks, and records the bodies.
//
// WaitFor waits for a number of messages; AssertNoMore and
// AssertNoMessagesBeyond are negative waits that fail as soon as an
// unexpected message arrives instead of sleeping through their window.
package fakesolver

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

// Lookback is how far back the gift-wrap subscription reaches: NIP-59
// back-dates wraps by up to two days.
const Lookback = 7 * 24 * time.Hour

// Message is one DM the solver read.
type Message struct {
	// From is the sender (the seal's signer).
	From string
	// Body is the rumor's content.
	Body string
	// RumorID is the rumor's id as computed by go-nostr.
	RumorID string
	// RumorCreatedAt is the rumor's created_at.
	RumorCreatedAt nostr.Timestamp
	// WrapID is the gift wrap's event id.
	WrapID string
	// Relay is the URL the wrap first came from.
	Relay string
	// ReceivedAt is when the solver unwrapped it.
	ReceivedAt time.Time
}

// Rejected is a gift wrap addressed to the solver that a NIP-17 client
// would not show.
type Rejected struct {
	// WrapID is the gift wrap's event id.
	WrapID string
	// Reason says why.
	Reason string
}

// Solver is a fake solver connected to one or more relays.
type Solver struct {
	t      testing.TB
	sk, pk string

	ckMu     sync.Mutex
	convKeys map[string][32]byte // seal signer -> conversation key

	mu        sync.Mutex
	seen      map[string]bool
	messages  []Message
	rejected  []Rejected
	consumed  int
	changed   chan struct{}
	connected int
}

// Start creates a solver with a fresh key, subscribes on every relay URL
// and stops at the end of the test.
func Start(t testing.TB, relayURLs ...string) *Solver {
	t.Helper()
	sk := nostr.GeneratePrivateKey()
	return StartWithKey(t, sk, relayURLs...)
}

// StartWithKey is Start with a given secret key (hex).
func StartWithKey(t testing.TB, sk string, relayURLs ...string) *Solver {
	t.Helper()
	pk, err := nostr.GetPublicKey(sk)
	if err != nil {
		t.Fatalf("fakesolver: bad key: %v", err)
	}
	s := &Solver{t: t, sk: sk, pk: pk, seen: map[string]bool{}, changed: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	for _, url := range relayURLs {
		ready := make(chan error, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.listen(ctx, url, ready)
		}()
		select {
		case err := <-ready:
			if err != nil {
				t.Fatalf("fakesolver: subscribe on %s: %v", url, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("fakesolver: subscribe on %s: timed out", url)
		}
	}
	return s
}

// Pubkey is the solver's public key, hex.
func (s *Solver) Pubkey() string { return s.pk }

// Npub is the solver's public key, NIP-19.
func (s *Solver) Npub() string {
	n, _ := nip19.EncodePublicKey(s.pk)
	return n
}

// SecretKey is the solver's secret key, hex (for building replies).
func (s *Solver) SecretKey() string { return s.sk }

// listen keeps a subscription open on one relay, reconnecting (with a
// fresh, wide since) when the connection drops, until ctx ends. ready
// receives the outcome of the first subscription.
func (s *Solver) listen(ctx context.Context, url string, ready chan<- error) {
	first := true
	for ctx.Err() == nil {
		err := s.subscribeOnce(ctx, url, func() {
			if first {
				first = false
				ready <- nil
			}
		})
		if first {
			first = false
			ready <- err
			if err != nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond): // reconnect pacing
		}
	}
}

func (s *Solver) subscribeOnce(ctx context.Context, url string, subscribed func()) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	r, err := relayconn.Dial(cctx, url, relayconn.Options{})
	cancel()
	if err != nil {
		return err
	}
	defer r.Close()
	// unwrap checks the wrap's signature itself (and records a rejection):
	// relayconn verifies nothing.
	since := nostr.Timestamp(time.Now().Add(-Lookback).Unix())
	sub, err := r.Subscribe(ctx, nostr.Filters{{Kinds: []int{nostr.KindGiftWrap}, Tags: nostr.TagMap{"p": {s.pk}}, Since: &since}}, "fakesolver")
	if err != nil {
		return err
	}
	defer sub.Close()
	err = sub.Each(ctx, func(it relayconn.Item) {
		if !it.EOSE {
			s.handle(url, it.Event)
			return
		}
		s.mu.Lock()
		s.connected++
		s.notifyLocked()
		s.mu.Unlock()
		subscribed()
	})
	if ctx.Err() != nil {
		return nil
	}
	return err
}

func (s *Solver) handle(url string, wrap *nostr.Event) {
	s.mu.Lock()
	if s.seen[wrap.ID] {
		s.mu.Unlock()
		return
	}
	s.seen[wrap.ID] = true
	s.mu.Unlock()

	msg, reason := s.unwrap(wrap)
	s.mu.Lock()
	defer s.mu.Unlock()
	if reason != "" {
		s.rejected = append(s.rejected, Rejected{WrapID: wrap.ID, Reason: reason})
	} else {
		msg.Relay = url
		msg.ReceivedAt = time.Now()
		s.messages = append(s.messages, msg)
	}
	s.notifyLocked()
}

// conversationKey derives the NIP-44 conversation key with peer, cached
// when asked.
func (s *Solver) conversationKey(peer string, cache bool) ([32]byte, error) {
	if cache {
		s.ckMu.Lock()
		ck, ok := s.convKeys[peer]
		s.ckMu.Unlock()
		if ok {
			return ck, nil
		}
	}
	ck, err := nip44.GenerateConversationKey(peer, s.sk)
	if err == nil && cache {
		s.ckMu.Lock()
		if s.convKeys == nil {
			s.convKeys = map[string][32]byte{}
		}
		s.convKeys[peer] = ck
		s.ckMu.Unlock()
	}
	return ck, err
}

// unwrap opens a gift wrap with go-nostr's nip59.GiftUnwrap and applies
// NIP-17's rules: rumor kind 14, a p tag naming this solver, and a rumor
// authored by the seal's signer (GiftUnwrap overwrites the rumor's pubkey,
// so the original is read from the decrypted JSON).
func (s *Solver) unwrap(wrap *nostr.Event) (Message, string) {
	if ok, _ := wrap.CheckSignature(); !ok {
		return Message{}, "gift wrap signature invalid"
	}
	var rumorJSON string
	calls := 0
	rumor, err := nip59.GiftUnwrap(*wrap, func(otherPubkey, ciphertext string) (string, error) {
		calls++
		// The first call is the wrap's one-use key; the second the seal's
		// signer, the same sender every time: remember its key, as a real
		// client does.
		ck, err := s.conversationKey(otherPubkey, calls == 2)
		if err != nil {
			return "", err
		}
		pt, err := nip44.Decrypt(ciphertext, ck)
		if calls == 2 {
			rumorJSON = pt
		}
		return pt, err
	})
	if err != nil {
		return Message{}, "unwrap: " + err.Error()
	}
	var orig struct {
		PubKey string `json:"pubkey"`
	}
	if err := json.Unmarshal([]byte(rumorJSON), &orig); err != nil {
		return Message{}, "rumor json: " + err.Error()
	}
	if orig.PubKey != rumor.PubKey {
		return Message{}, fmt.Sprintf("rumor author %s is not the seal signer %s", orig.PubKey, rumor.PubKey)
	}
	if rumor.Kind != nostr.KindDirectMessage {
		return Message{}, fmt.Sprintf("rumor kind %d, want 14", rumor.Kind)
	}
	if rumor.Tags.FindWithValue("p", s.pk) == nil {
		return Message{}, "rumor has no p tag naming the recipient"
	}
	return Message{
		From:           rumor.PubKey,
		Body:           rumor.Content,
		RumorID:        rumor.ID,
		RumorCreatedAt: rumor.CreatedAt,
		WrapID:         wrap.ID,
	}, ""
}

func (s *Solver) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// Messages returns every message read so far, in arrival order.
func (s *Solver) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Bodies returns the bodies of every message read so far.
func (s *Solver) Bodies() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, m.Body)
	}
	return out
}

// Rejected returns the gift wraps a NIP-17 client would not show.
func (s *Solver) Rejected() []Rejected {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejected(nil), s.rejected...)
}

// WaitFor waits until at least n messages have arrived and returns the
// first n; it fails the test when timeout passes without a new message
// (a stall, not a slow machine: under the race detector unwrapping a
// thousand DMs alone takes longer than a fixed deadline would allow).
// Later negative waits (AssertNoMore) count from n.
func (s *Solver) WaitFor(n int, timeout time.Duration) []Message {
	s.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	last := -1
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			out := append([]Message(nil), s.messages[:n]...)
			s.consumed = n
			s.mu.Unlock()
			return out
		}
		ch, got := s.changed, len(s.messages)
		s.mu.Unlock()
		if got != last {
			last = got
			deadline.Reset(timeout) // progress: the deadline counts from here
		}
		select {
		case <-ch:
		case <-deadline.C:
			s.t.Fatalf("fakesolver %s: got %d messages, none more within %s, want %d (rejected: %v)", short(s.pk), got, timeout, n, s.Rejected())
			return nil
		}
	}
}

// AssertNoMore fails the test as soon as a message beyond those returned
// by the last WaitFor arrives within the window; it returns after the
// window when none did.
func (s *Solver) AssertNoMore(within time.Duration) {
	s.t.Helper()
	s.mu.Lock()
	n := s.consumed
	s.mu.Unlock()
	s.AssertNoMessagesBeyond(n, within)
}

// AssertNoMessagesBeyond fails the test as soon as more than n messages
// have arrived, or returns after the window.
func (s *Solver) AssertNoMessagesBeyond(n int, within time.Duration) {
	s.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.messages) > n {
			extra := s.messages[n:]
			s.mu.Unlock()
			s.t.Fatalf("fakesolver %s: %d unexpected message(s), first from %s: %q", short(s.pk), len(extra), short(extra[0].From), extra[0].Body)
			return
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

func short(pk string) string {
	if len(pk) > 8 {
		return pk[:8]
	}
	return pk
}

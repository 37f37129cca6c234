package fakeparty

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/pkg/testkit/fakemostro/nostrconn"
)

// Lookback is how far back the party's subscriptions reach (legacy chat
// wraps and v1 Mostro messages are backdated up to two days).
const Lookback = 7 * 24 * time.Hour

// Options configures a party.
type Options struct {
	// Keys is the trade key; zero means a fresh one.
	Keys keys.Keys
	// Now is the clock for the lines it sends and validates; nil means
	// time.Now.
	Now func() time.Time
}

// Rejected is an event on the party's channel that failed validation.
type Rejected struct {
	EventID string
	Reason  string
}

// Party is a buyer or seller with a trade key.
type Party struct {
	t     testing.TB
	keys  keys.Keys
	urls  []string
	now   func() time.Time
	inbox *nostrconn.Conn

	mu        sync.Mutex
	mostro    []transport.Received
	channel   *chat.Channel
	solver    string
	chatConn  *nostrconn.Conn
	lines     []chat.Line
	lineIDs   map[string]bool
	dupLines  int
	rejected  []Rejected
	consumed  int
	changed   chan struct{}
	validator chat.Validator
}

// New starts a party with a fresh trade key, listening for Mostro's
// messages to it on every relay. It stops at the end of the test.
func New(t testing.TB, relayURLs ...string) *Party {
	t.Helper()
	return NewWithOptions(t, Options{}, relayURLs...)
}

// NewWithOptions is New with a given key or clock.
func NewWithOptions(t testing.TB, opts Options, relayURLs ...string) *Party {
	t.Helper()
	if opts.Keys.IsZero() {
		opts.Keys = keys.Generate()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	p := &Party{
		t: t, keys: opts.Keys, urls: relayURLs, now: opts.Now, lineIDs: map[string]bool{},
		changed: make(chan struct{}), validator: chat.Validator{Now: opts.Now},
	}
	since := nostr.Timestamp(time.Now().Add(-Lookback).Unix())
	p.inbox = nostrconn.Dial(t, relayURLs, nostr.Filters{{
		Kinds: []int{mostro.KindGiftWrap, mostro.KindDirect},
		Tags:  nostr.TagMap{"p": {p.keys.PublicKey()}},
		Since: &since,
	}}, func(_ string, evt *nostr.Event) {
		rcv, err := transport.Open(*evt, p.keys, transport.OpenOptions{AcceptRumorKind14: true})
		if err != nil {
			return
		}
		p.mu.Lock()
		p.mostro = append(p.mostro, rcv)
		p.notifyLocked()
		p.mu.Unlock()
	})
	return p
}

// Pubkey is the party's trade public key (the buyer_pubkey / seller_pubkey
// Mostro reports to the solver).
func (p *Party) Pubkey() string { return p.keys.PublicKey() }

// Keys is the trade key pair.
func (p *Party) Keys() keys.Keys { return p.keys }

// MostroMessages returns the protocol messages addressed to the party.
func (p *Party) MostroMessages() []transport.Received {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]transport.Received(nil), p.mostro...)
}

// WaitMostroMessage waits for a protocol message with the given action
// from sender (any sender if empty).
func (p *Party) WaitMostroMessage(action mostro.Action, sender string, timeout time.Duration) transport.Received {
	p.t.Helper()
	var got transport.Received
	p.waitFor(timeout, fmt.Sprintf("mostro message %s", action), func() bool {
		for _, r := range p.mostro {
			if r.Message.Kind.Action == action && (sender == "" || r.Sender == sender) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// LearnSolver waits for Mostro's admin-took-dispute notice (payload Peer
// = the solver) from mostroPubkey, then derives the chat channel with that
// solver and starts reading it. It returns the solver's pubkey.
func (p *Party) LearnSolver(mostroPubkey string, timeout time.Duration) string {
	p.t.Helper()
	var solver string
	p.waitFor(timeout, "admin-took-dispute notice", func() bool {
		for _, r := range p.mostro {
			k := r.Message.Kind
			if r.Sender == mostroPubkey && k.Action == mostro.ActionAdminTookDispute &&
				k.Payload != nil && k.Payload.Peer != nil {
				solver = k.Payload.Peer.Pubkey
			}
		}
		return solver != ""
	})
	p.SetSolver(solver)
	return solver
}

// SetSolver derives the channel with solver (v1 shared key, v2
// K_conv/K_sign) and subscribes to it: v2 lines by author pub(K_sign),
// legacy lines by p = pub(shared). Lines are validated as Serbero's relay
// gateway does, with the solver as the only allowed signer.
func (p *Party) SetSolver(solver string) chat.Channel {
	p.t.Helper()
	ch, err := chat.Derive(p.keys, solver)
	if err != nil {
		p.t.Fatalf("fakeparty: derive chat keys: %v", err)
	}
	p.mu.Lock()
	old := p.chatConn
	p.channel, p.solver, p.chatConn = &ch, solver, nil
	p.mu.Unlock()
	if old != nil {
		old.Close()
	}
	since := nostr.Timestamp(time.Now().Add(-Lookback).Unix())
	conn := nostrconn.Dial(p.t, p.urls, nostr.Filters{
		{Kinds: []int{mostro.KindDirect}, Authors: []string{ch.SignPubkey()}, Since: &since},
		{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": {ch.SharedPubkey()}}, Since: &since},
	}, func(_ string, evt *nostr.Event) { p.handleLine(ch, solver, evt) })
	p.mu.Lock()
	p.chatConn = conn
	p.mu.Unlock()
	return ch
}

func (p *Party) handleLine(ch chat.Channel, solver string, evt *nostr.Event) {
	line, err := p.validator.Validate(*evt, ch, solver)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case errors.Is(err, chat.ErrOwnLine):
		return // our own send, echoed back
	case err != nil:
		p.rejected = append(p.rejected, Rejected{EventID: evt.ID, Reason: chat.ReasonOf(err)})
	case p.lineIDs[line.Inner.ID]:
		p.dupLines++
	default:
		p.lineIDs[line.Inner.ID] = true
		p.lines = append(p.lines, line)
	}
	p.notifyLocked()
}

// Channel returns the derived channel (after LearnSolver or SetSolver).
func (p *Party) Channel() chat.Channel {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.channel == nil {
		p.t.Fatalf("fakeparty: no solver yet (call LearnSolver or SetSolver)")
		return chat.Channel{}
	}
	return *p.channel
}

// Lines returns the solver's lines read so far (once per inner event id,
// whichever form delivered it first), in arrival order.
func (p *Party) Lines() []chat.Line {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]chat.Line(nil), p.lines...)
}

// Texts returns the text of every line read so far.
func (p *Party) Texts() []string {
	var out []string
	for _, l := range p.Lines() {
		out = append(out, l.Text())
	}
	return out
}

// DuplicateLines counts lines seen again with an inner id already read
// (the same line in the other form, or a relay duplicate).
func (p *Party) DuplicateLines() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dupLines
}

// Rejected returns the events on the channel that failed validation.
func (p *Party) Rejected() []Rejected {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Rejected(nil), p.rejected...)
}

// WaitLines waits until at least n lines arrived and returns the first n.
// Later AssertNoMoreLines counts from n.
func (p *Party) WaitLines(n int, timeout time.Duration) []chat.Line {
	p.t.Helper()
	var out []chat.Line
	p.waitFor(timeout, fmt.Sprintf("%d chat line(s)", n), func() bool {
		if len(p.lines) < n {
			return false
		}
		out = append([]chat.Line(nil), p.lines[:n]...)
		p.consumed = n
		return true
	})
	return out
}

// AssertNoMoreLines fails as soon as a line beyond those returned by the
// last WaitLines arrives within the window.
func (p *Party) AssertNoMoreLines(within time.Duration) {
	p.t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		if len(p.lines) > p.consumed {
			extra := p.lines[p.consumed]
			p.mu.Unlock()
			p.t.Fatalf("fakeparty %s: unexpected chat line %q", short(p.Pubkey()), extra.Text())
			return
		}
		ch := p.changed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

func (p *Party) waitFor(timeout time.Duration, what string, cond func() bool) {
	p.t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok := cond()
		ch := p.changed
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			p.t.Fatalf("fakeparty %s: timed out after %s waiting for %s (rejected: %v)", short(p.Pubkey()), timeout, what, p.Rejected())
			return
		}
	}
}

func (p *Party) notifyLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Publish sends any event to the party's relays.
func (p *Party) Publish(evt nostr.Event) {
	p.t.Helper()
	if err := p.inbox.Publish(context.Background(), evt); err != nil {
		p.t.Fatalf("fakeparty: publish: %v", err)
	}
}

// Say sends a chat line to the solver in v2 form and returns its inner
// event.
func (p *Party) Say(text string) nostr.Event {
	p.t.Helper()
	_, inner := p.Send(chat.FormV2, text)
	return inner
}

// Send sends a chat line in the given form; it returns the outer event
// published and the inner event.
func (p *Party) Send(form chat.Form, text string) (outer, inner nostr.Event) {
	p.t.Helper()
	ch := p.Channel()
	var err error
	if form == chat.FormV1 {
		outer, inner, err = chat.BuildV1(ch, p.keys, text, p.now())
	} else {
		outer, inner, err = chat.BuildV2(ch, p.keys, text, p.now())
	}
	if err != nil {
		p.t.Fatalf("fakeparty: build line: %v", err)
	}
	p.Publish(outer)
	return outer, inner
}

// Rewrap puts an existing inner event (an old line, or anyone's signed
// kind-1 event) into a fresh outer event of the channel and publishes it:
// the re-wrapped replay. The v2 outer is stamped now.
func (p *Party) Rewrap(form chat.Form, inner nostr.Event) nostr.Event {
	p.t.Helper()
	ch := p.Channel()
	var outer nostr.Event
	var err error
	if form == chat.FormV1 {
		outer, err = chat.WrapV1(ch, inner, p.now())
	} else {
		outer, err = chat.WrapV2(ch, inner, p.now())
	}
	if err != nil {
		p.t.Fatalf("fakeparty: rewrap: %v", err)
	}
	p.Publish(outer)
	return outer
}

// Forge publishes a line at the channel's address whose inner event is
// signed by a third party's key (fresh if zero): the impersonation the
// inner-signer check must stop. In v1 anyone who knows the shared pubkey
// can do this; in v2 it takes the channel's K_sign (a leak, or the other
// end of the channel).
func (p *Party) Forge(form chat.Form, forger keys.Keys, text string) nostr.Event {
	p.t.Helper()
	if forger.IsZero() {
		forger = keys.Generate()
	}
	inner, err := chat.NewInner(forger, text, p.now())
	if err != nil {
		p.t.Fatalf("fakeparty: forge: %v", err)
	}
	return p.Rewrap(form, inner)
}

// SendAsOutsider publishes a v2-shaped line (kind 14, p = pub(K_conv))
// authored by a key that is not K_sign, with the party's own inner line:
// an outsider who knows only the public address.
func (p *Party) SendAsOutsider(text string) nostr.Event {
	p.t.Helper()
	ch := p.Channel()
	outer, _, err := chat.BuildV2(ch, p.keys, text, p.now())
	if err != nil {
		p.t.Fatalf("fakeparty: outsider line: %v", err)
	}
	if err := keys.Generate().Sign(&outer); err != nil {
		p.t.Fatalf("fakeparty: outsider line: %v", err)
	}
	p.Publish(outer)
	return outer
}

// SendFutureDated publishes a line whose inner and outer created_at are
// ahead of the clock (cursor poisoning).
func (p *Party) SendFutureDated(form chat.Form, text string, ahead time.Duration) nostr.Event {
	p.t.Helper()
	ch := p.Channel()
	at := p.now().Add(ahead)
	inner, err := chat.NewInner(p.keys, text, at)
	if err != nil {
		p.t.Fatalf("fakeparty: future line: %v", err)
	}
	var outer nostr.Event
	if form == chat.FormV1 {
		outer, err = chat.WrapV1(ch, inner, p.now())
		if err == nil {
			outer.CreatedAt = nostr.Timestamp(at.Unix())
			err = keys.Generate().Sign(&outer)
		}
	} else {
		outer, err = chat.WrapV2(ch, inner, at)
	}
	if err != nil {
		p.t.Fatalf("fakeparty: future line: %v", err)
	}
	p.Publish(outer)
	return outer
}

// SendWithPTags publishes a line whose p tags are replaced by pTags
// (wrong address, none, or extra ones), re-signed so only the tags are
// wrong.
func (p *Party) SendWithPTags(form chat.Form, text string, pTags ...string) nostr.Event {
	p.t.Helper()
	ch := p.Channel()
	var outer nostr.Event
	var err error
	if form == chat.FormV1 {
		outer, _, err = chat.BuildV1(ch, p.keys, text, p.now())
	} else {
		outer, _, err = chat.BuildV2(ch, p.keys, text, p.now())
	}
	if err != nil {
		p.t.Fatalf("fakeparty: build line: %v", err)
	}
	outer.Tags = nostr.Tags{}
	for _, pk := range pTags {
		outer.Tags = append(outer.Tags, nostr.Tag{"p", pk})
	}
	signer := ch.Sign
	if form == chat.FormV1 {
		signer = keys.Generate()
	}
	if err := signer.Sign(&outer); err != nil {
		p.t.Fatalf("fakeparty: sign: %v", err)
	}
	p.Publish(outer)
	return outer
}

// SendOversized publishes a line above the 64 KiB limit (but within
// NIP-44's 64 KiB plaintext bound, so it is a well-formed event).
func (p *Party) SendOversized(form chat.Form) nostr.Event {
	p.t.Helper()
	outer, _ := p.Send(form, strings.Repeat("x", 50_000))
	return outer
}

// Flood publishes n lines quickly ("<prefix> 1" … "<prefix> n") and
// returns their inner events.
func (p *Party) Flood(form chat.Form, n int, prefix string) []nostr.Event {
	p.t.Helper()
	out := make([]nostr.Event, 0, n)
	for i := 1; i <= n; i++ {
		_, inner := p.Send(form, fmt.Sprintf("%s %d", prefix, i))
		out = append(out, inner)
	}
	return out
}

func short(pk string) string {
	if len(pk) > 8 {
		return pk[:8]
	}
	return pk
}

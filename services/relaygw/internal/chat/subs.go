package chat

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
)

// chunk is a set of at most ChunkSize channels sharing two subscriptions
// (v2 and v1). Ids are never reused, so a chunk's subscription keys are
// unique for the life of the process. Members are guarded by Manager.mu.
type chunk struct {
	id      int
	parties []string // in placement order
}

func (ch *chunk) keyV2() string { return SubKeyV2 + "/" + strconv.Itoa(ch.id) }
func (ch *chunk) keyV1() string { return SubKeyV1 + "/" + strconv.Itoa(ch.id) }

func (ch *chunk) remove(party string) {
	ch.parties = slices.DeleteFunc(ch.parties, func(p string) bool { return p == party })
}

// placeLocked puts a new channel into the newest chunk with room, or a new
// chunk (mu held). Existing channels never move: a registration or a
// retirement re-subscribes one chunk, not all.
func (m *Manager) placeLocked(c *channel) {
	var ch *chunk
	if n := len(m.chunks); n > 0 && len(m.chunks[n-1].parties) < m.o.ChunkSize {
		ch = m.chunks[n-1]
	} else {
		m.nextChunk++
		ch = &chunk{id: m.nextChunk}
		m.chunks = append(m.chunks, ch)
	}
	ch.parties = append(ch.parties, c.party)
	c.chunk = ch
}

// resync brings the pool in line with the touched chunks (upd held):
// new chunks are subscribed, emptied ones unsubscribed and forgotten,
// changed ones re-subscribed with their new members.
func (m *Manager) resync(touched []*chunk) {
	m.mu.Lock()
	if !m.started {
		m.mu.Unlock()
		return // load subscribes every chunk
	}
	var empty []*chunk
	m.chunks = slices.DeleteFunc(m.chunks, func(ch *chunk) bool {
		if len(ch.parties) == 0 {
			empty = append(empty, ch)
			return true
		}
		return false
	})
	m.mu.Unlock()
	done := map[*chunk]bool{}
	for _, ch := range touched {
		if done[ch] {
			continue
		}
		done[ch] = true
		switch {
		case slices.Contains(empty, ch):
			m.o.Pool.Unsubscribe(ch.keyV2())
			m.o.Pool.Unsubscribe(ch.keyV1())
			m.dropPhases(ch.keyV2())
		case m.o.Pool.Has(ch.keyV2()):
			m.o.Pool.Resubscribe(ch.keyV2())
			m.o.Pool.Resubscribe(ch.keyV1())
		default:
			m.subscribe(ch)
		}
	}
}

// subscribe adds a chunk's two subscriptions to the pool.
func (m *Manager) subscribe(ch *chunk) {
	m.o.Pool.Subscribe(m.specV2(ch))
	m.o.Pool.Subscribe(m.specV1(ch))
}

// members snapshots a chunk's channels.
func (m *Manager) members(ch *chunk) []*channel {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]*channel, 0, len(ch.parties))
	for _, p := range ch.parties {
		if c := m.channels[p]; c != nil {
			out = append(out, c)
		}
	}
	return out
}

// phaseKey names one v2 subscription on one relay.
type phaseKey struct{ sub, relay string }

// v2Phase is where a chunk's v2 subscription on one relay is: before the
// end of its stored lines (stored false), holding back the cursors, or
// after it.
type v2Phase struct {
	stored  bool
	reqAt   int64            // when the REQ was built: the window's end
	parties []string         // the REQ's channels
	held    map[string]int64 // party -> newest line time, before the EOSE
}

// specV2 is a chunk's v2 subscription. Its since is the oldest of the
// members' cursors on that relay (minus the margin), or now minus the
// lookback for a member without one. A relay's cursor of a channel is the
// time up to which that relay's stored lines were read: at the end of the
// stored lines of a complete window (after the last page) every member
// gets the REQ's time (or its newest line's, if later); after it, each
// line moves its channel's cursor. Cursors are per relay: a lagging relay
// is read from where it was, not from where the others are.
func (m *Manager) specV2(ch *chunk) pool.Spec {
	key := ch.keyV2()
	return pool.Spec{
		Key: key, Page: Page, NoDedup: true,
		Filters: func(ctx context.Context, relayURL string) (nostr.Filters, error) {
			cs := m.members(ch)
			m.curMu.Lock()
			delete(m.v2Phases, phaseKey{key, relayURL}) // a new REQ: before its EOSE
			m.curMu.Unlock()
			if len(cs) == 0 {
				return nil, nil
			}
			parties := make([]string, len(cs))
			authors := make([]string, len(cs))
			for i, c := range cs {
				parties[i], authors[i] = c.party, c.keys.SignPubkey()
			}
			cursors, err := m.o.Store.ChatCursors(ctx, relayURL, parties)
			if err != nil {
				return nil, err
			}
			now := m.o.Now()
			since := now.Add(-m.o.Lookback).Unix()
			oldest := int64(-1)
			for _, p := range parties {
				ts, ok := cursors[p]
				if !ok {
					oldest = since
					break
				}
				if oldest < 0 || ts-int64(m.o.Margin/time.Second) < oldest {
					oldest = ts - int64(m.o.Margin/time.Second)
				}
			}
			s := nostr.Timestamp(max(oldest, 0))
			m.curMu.Lock()
			m.v2Phases[phaseKey{key, relayURL}] = &v2Phase{reqAt: now.Unix(), parties: parties, held: map[string]int64{}}
			m.curMu.Unlock()
			return nostr.Filters{{Kinds: []int{mostro.KindDirect}, Authors: authors, Since: &s}}, nil
		},
		Handle:      m.handle,
		EndOfStored: func(ctx context.Context, relayURL string) error { return m.endOfStoredV2(ctx, key, relayURL) },
	}
}

// specV1 is a chunk's legacy subscription (gift wraps are back-dated: no
// cursor, always the lookback).
func (m *Manager) specV1(ch *chunk) pool.Spec {
	return pool.Spec{
		Key: ch.keyV1(), Page: Page, NoDedup: true,
		Filters: func(context.Context, string) (nostr.Filters, error) {
			cs := m.members(ch)
			if len(cs) == 0 {
				return nil, nil
			}
			addrs := make([]string, len(cs))
			for i, c := range cs {
				addrs[i] = c.keys.SharedPubkey()
			}
			since := nostr.Timestamp(m.o.Now().Add(-m.o.Lookback).Unix())
			return nostr.Filters{{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": addrs}, Since: &since}}, nil
		},
		Handle: m.handle,
	}
}

// advanceV2Cursor moves a channel's v2 cursor on a relay to ts, or holds
// ts back while that relay is still sending stored lines.
func (m *Manager) advanceV2Cursor(ctx context.Context, c *channel, relayURL string, ts int64) {
	key := phaseKey{c.chunk.keyV2(), relayURL}
	m.curMu.Lock()
	p := m.v2Phases[key]
	if p == nil || !p.stored {
		if p != nil {
			p.held[c.party] = max(p.held[c.party], ts)
		}
		m.curMu.Unlock()
		return
	}
	m.curMu.Unlock()
	if err := m.o.Store.AdvanceChatCursors(ctx, relayURL, map[string]int64{c.party: ts}); err != nil {
		m.o.Logger.Warn("could not advance a chat cursor", "party_trade_pubkey", c.party, "relay", relayURL, "error", err)
	}
}

// endOfStoredV2 stores the cursors of a chunk's complete window on a
// relay.
func (m *Manager) endOfStoredV2(ctx context.Context, key, relayURL string) error {
	m.curMu.Lock()
	p := m.v2Phases[phaseKey{key, relayURL}]
	if p == nil {
		m.curMu.Unlock()
		return nil
	}
	p.stored = true
	cursors := make(map[string]int64, len(p.parties))
	for _, party := range p.parties {
		cursors[party] = max(p.reqAt, p.held[party])
	}
	p.held = nil
	m.curMu.Unlock()
	if err := m.o.Store.AdvanceChatCursors(ctx, relayURL, cursors); err != nil {
		m.o.Logger.Warn("could not store chat cursors", "relay", relayURL, "channels", len(cursors), "error", err)
	}
	return nil
}

func (m *Manager) dropPhases(key string) {
	m.curMu.Lock()
	defer m.curMu.Unlock()
	for k := range m.v2Phases {
		if k.sub == key {
			delete(m.v2Phases, k)
		}
	}
}

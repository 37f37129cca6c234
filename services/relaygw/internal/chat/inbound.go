package chat

import (
	"context"
	"log/slog"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	mchat "github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/services/relaygw/internal/store"
	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// definite reports whether a validation refusal holds for every event
// with this id: the id commits to kind, author, tags, content and
// created_at, not to the signature, and a future-dated event becomes
// valid later. Only such refusals (of an event whose id checks) are
// remembered as seen.
func definite(reason string) bool {
	switch reason {
	case mchat.ErrBadSignature.Reason(), mchat.ErrFutureDated.Reason(), "":
		return false
	}
	return true
}

// reject counts a refusal and logs it at debug level: anyone can send
// junk to a channel's public address by the thousand, so refusals are
// watched through serbero_relaygw_chat_lines_rejected_total, not the log.
func (m *Manager) reject(reason string, ev *nostr.Event, relayURL string, party string) {
	m.rejected.WithLabelValues(reason).Inc()
	m.o.Logger.Log(context.Background(), slog.LevelDebug, "chat event refused", "reason", reason, "event_id", ev.ID, "kind", ev.Kind,
		"relay", relayURL, "party_trade_pubkey", party)
}

// route finds the channel of an event by its address: the author (v2) or
// a p tag (v1).
func (m *Manager) route(ev *nostr.Event) *channel {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch ev.Kind {
	case mostro.KindDirect:
		return m.bySign[ev.PubKey]
	case mostro.KindGiftWrap:
		for _, t := range ev.Tags {
			if len(t) >= 2 && t[0] == "p" {
				if c := m.byShared[t[1]]; c != nil {
					return c
				}
			}
		}
	}
	return nil
}

// handle runs the checks on one delivered event (see the package doc for
// the order and why the rate limit comes last).
func (m *Manager) handle(ctx context.Context, relayURL string, ev *nostr.Event) error {
	c := m.route(ev)
	if c == nil {
		// Not remembered: the channel may be registered a moment later.
		m.reject("unknown_channel", ev, relayURL, "")
		return nil
	}
	if m.outerSeen.has(ev.ID) {
		m.reject("duplicate_outer", ev, relayURL, c.party)
		return nil
	}
	line, err := m.validator.Validate(*ev, c.keys, c.party)
	if err != nil {
		reason := mchat.ReasonOf(err)
		if reason == "" {
			reason = "invalid"
		}
		if definite(reason) && ev.CheckID() {
			m.outerSeen.add(ev.ID)
		}
		m.reject(reason, ev, relayURL, c.party)
		return nil
	}
	if !verify.StorableText(line.Inner.Content) {
		// A party can send anything; text Postgres cannot hold would fail
		// every retry and stall the channel's subscription.
		m.outerSeen.add(ev.ID)
		m.reject(string(verify.Unstorable), ev, relayURL, c.party)
		return nil
	}
	lineTime := min(int64(ev.CreatedAt), m.o.Now().Unix())
	// The durable dedup before the rate limit: a replayed line (after a
	// restart, or in the other form) costs the party no token.
	stored, err := m.o.Store.ChatLineStored(ctx, line.Inner.ID)
	if err != nil {
		return err
	}
	if stored {
		m.outerSeen.add(ev.ID)
		if line.Form == mchat.FormV2 {
			m.advanceV2Cursor(ctx, c, relayURL, lineTime)
		}
		m.reject("duplicate_inner", ev, relayURL, c.party)
		return nil
	}
	// The sender is verified now (the party's own inner signature): its
	// limit for this form counts the line, nobody else's.
	w := c.v1
	if line.Form == mchat.FormV2 {
		w = c.v2
	}
	at := int64(line.Inner.CreatedAt)
	if !w.allow(at) {
		// Not remembered: a redelivery is judged again.
		m.reject("rate_limited", ev, relayURL, c.party)
		return nil
	}
	_, inserted, err := m.o.Store.InsertChatLine(ctx, store.ChatLine{
		Party: c.party, InnerID: line.Inner.ID, InnerCreatedAt: int64(line.Inner.CreatedAt), OuterID: ev.ID,
		Form: int(line.Form), Content: line.Inner.Content,
	})
	if err != nil {
		w.forget(at)
		return err // not remembered: the redelivery goes through
	}
	m.outerSeen.add(ev.ID)
	if line.Form == mchat.FormV2 {
		m.advanceV2Cursor(ctx, c, relayURL, lineTime)
	}
	if !inserted {
		m.reject("duplicate_inner", ev, relayURL, c.party)
		return nil
	}
	m.accepted.WithLabelValues(line.Form.String()).Inc()
	m.o.Logger.Info("chat line received", "party_trade_pubkey", c.party, "inner_event_id", line.Inner.ID, "form", line.Form.String(), "relay", relayURL)
	m.notifier.Notify()
	return nil
}

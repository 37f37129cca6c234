// Package chat runs Serbero's side of the dispute chat channels (one per
// party trade key).
//
// Keys are derived by pkg/mostro/chat from Serbero's key and the party's
// trade pubkey, never stored: after a restart they are re-derived from the
// registered trade pubkeys (table relaygw_chat_channels, public addresses
// only).
//
// Inbound: two subscriptions cover every registered channel: v2
// {kinds:[14], authors:[pub(K_sign)]} with one filter per channel from the
// channel's durable cursor, and legacy v1 {kinds:[1059], #p:[pub(shared)…]}
// reaching back [relaygw].giftwrap_lookback_seconds. Each delivered event
// goes through the protocol's validation order: routing by author / p
// (the channel address), the outer-id LRU, the per-channel rate limit,
// then pkg/mostro/chat's stateless steps (p tag, time window, size, outer
// signature, decrypt, inner signature, inner signer == the party, inner
// kind 1, timestamps), then the durable inner-id dedup (a line arrives
// once, whichever form and however often it is replayed). Each rejection
// is counted by reason. Accepted lines are stored (so lines arriving while
// no stream is open are kept) and streamed by cursor.
//
// Outbound: SendChatMessage builds the v2 line (and the legacy form when
// [chat].send_legacy_form), stores the signed events under the
// idempotency key and publishes them; a retry republishes the identical
// events.
package chat

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/mostro"
	mchat "github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/notify"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/store"
	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// Subscription keys.
const (
	SubKeyV2 = "chat-v2"
	SubKeyV1 = "chat-v1"
)

// Rate limit per channel (protocol chat.md: about 30 a minute, burst 60).
const (
	ratePerMinute = 30
	rateBurst     = 60
)

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = reason.MaxKeyLen

// Options configures a Manager.
type Options struct {
	Identity   *identity.Identity
	Store      *store.Store
	Pool       *pool.Pool
	Lookback   time.Duration
	Margin     time.Duration
	SendLegacy bool
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Manager holds the registered channels.
type Manager struct {
	o         Options
	validator mchat.Validator
	notifier  *notify.Notifier
	rejected  *prometheus.CounterVec
	accepted  *prometheus.CounterVec
	outerSeen *lru

	mu       sync.Mutex
	channels map[string]*channel // by party trade pubkey
	bySign   map[string]*channel
	byShared map[string]*channel
	started  bool

	// v2 cursors held back until the relay's EOSE (see specV2).
	curMu    sync.Mutex
	v2Phases map[string]*v2Phase // by relay URL
}

// v2Phase is where the v2 subscription on one relay is: before its EOSE
// (stored false), holding back the newest line time per party, or after
// it.
type v2Phase struct {
	stored bool
	held   map[string]int64 // party -> newest outer created_at
}

type channel struct {
	party   string
	keys    mchat.Channel
	limiter *bucket
}

// New builds a Manager.
func New(o Options) (*Manager, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	m := &Manager{
		o: o, validator: mchat.Validator{Now: o.Now}, notifier: notify.New(), outerSeen: newLRU(20000),
		channels: map[string]*channel{}, bySign: map[string]*channel{}, byShared: map[string]*channel{},
		v2Phases: map[string]*v2Phase{},
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_chat_lines_rejected_total",
			Help: "Inbound dispute-chat events refused, by reason (validation order of the protocol; duplicate_inner = a replayed or already received line).",
		}, []string{"reason"}),
		accepted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_chat_lines_accepted_total",
			Help: "Inbound dispute-chat lines accepted and stored, by wire form (v1, v2).",
		}, []string{"form"}),
	}
	for _, r := range append(mchat.Reasons(), "unknown_channel", "duplicate_outer", "rate_limited", "duplicate_inner", string(verify.Unstorable)) {
		m.rejected.WithLabelValues(r)
	}
	m.accepted.WithLabelValues("v1")
	m.accepted.WithLabelValues("v2")
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{m.rejected, m.accepted} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Start loads the registered channels and subscribes. If the database is
// not reachable, it keeps trying in the background until ctx ends.
func (m *Manager) Start(ctx context.Context) error {
	err := m.load(ctx)
	if err != nil {
		go func() {
			backoff := time.Second
			for {
				t := time.NewTimer(backoff)
				select {
				case <-ctx.Done():
					t.Stop()
					return
				case <-t.C:
				}
				if err := m.load(ctx); err == nil {
					return
				}
				backoff = min(2*backoff, 30*time.Second)
			}
		}()
	}
	return err
}

func (m *Manager) load(ctx context.Context) error {
	chs, err := m.o.Store.ChatChannels(ctx)
	if err != nil {
		return err
	}
	for _, c := range chs {
		if _, err := m.add(c.Party); err != nil {
			m.o.Logger.Warn("could not derive a registered chat channel", "party_trade_pubkey", c.Party, "error", err)
		}
	}
	m.mu.Lock()
	m.started = true
	m.mu.Unlock()
	m.o.Pool.Subscribe(m.specV2())
	m.o.Pool.Subscribe(m.specV1())
	return nil
}

// add derives and remembers a channel; added is false when known.
func (m *Manager) add(party string) (added bool, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.channels[party]; ok {
		return false, nil
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return false, err
	}
	c := &channel{party: party, keys: ck, limiter: newBucket(ratePerMinute, rateBurst, m.o.Now)}
	m.channels[party] = c
	m.bySign[ck.SignPubkey()] = c
	m.byShared[ck.SharedPubkey()] = c
	return true, nil
}

// remove forgets a channel added by a registration that failed.
func (m *Manager) remove(party string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.channels[party]
	if !ok {
		return
	}
	delete(m.channels, party)
	delete(m.bySign, c.keys.SignPubkey())
	delete(m.byShared, c.keys.SharedPubkey())
}

// Channel derives the public addresses of the channel with party.
func (m *Manager) Channel(party string) (store.ChatChannel, error) {
	party, err := normalizeParty(party)
	if err != nil {
		return store.ChatChannel{}, err
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return store.ChatChannel{}, reason.With(apperr.InvalidArgument("party_trade_pubkey cannot form a chat channel with Serbero's key"), reason.InvalidRecipient)
	}
	return store.ChatChannel{Party: party, V1Shared: ck.SharedPubkey(), V2Conv: ck.ConvPubkey(), V2Sign: ck.SignPubkey()}, nil
}

// Register registers channels durably (idempotent) and, when any is new,
// re-subscribes so their lines are fetched.
func (m *Manager) Register(ctx context.Context, parties []string) ([]string, error) {
	var out []string
	changed := false
	for _, p := range parties {
		c, err := m.Channel(p)
		if err != nil {
			return nil, err
		}
		// In memory first: a subscription (re)built from the database
		// would otherwise fetch the channel's lines before the handler
		// knows the channel, and refuse them as unknown_channel. A line
		// that arrives before the row is written fails its insert and is
		// fetched again on the re-subscribe.
		added, err := m.add(c.Party)
		if err != nil {
			return nil, err
		}
		if _, err := m.o.Store.RegisterChatChannel(ctx, c); err != nil {
			if added {
				m.remove(c.Party) // lines of an unregistered channel cannot be stored
			}
			return nil, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
		}
		changed = changed || added
		out = append(out, c.Party)
	}
	m.mu.Lock()
	started := m.started
	m.mu.Unlock()
	if changed && started {
		m.o.Pool.Resubscribe(SubKeyV2)
		m.o.Pool.Resubscribe(SubKeyV1)
	}
	return out, nil
}

func normalizeParty(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	if !keys.ValidPubkey(p) {
		return "", reason.With(apperr.InvalidArgument("party_trade_pubkey is not a valid public key (want 64 hex characters)"), reason.InvalidRecipient)
	}
	return p, nil
}

// specV2 is the v2 subscription. A channel's cursor (the newest line
// time, shared by the relays) moves only once a relay has sent all its
// stored events (EOSE): relays send them newest first, so a connection cut
// before the EOSE can leave older lines undelivered, which a cursor at the
// newest would skip on the next subscribe. Before the EOSE the newest time
// is held per relay and party; a re-subscribe drops it.
func (m *Manager) specV2() pool.Spec {
	return pool.Spec{
		Key: SubKeyV2,
		Filters: func(ctx context.Context, relayURL string) (nostr.Filters, error) {
			m.curMu.Lock()
			m.v2Phases[relayURL] = &v2Phase{held: map[string]int64{}}
			m.curMu.Unlock()
			chs, err := m.o.Store.ChatChannels(ctx)
			if err != nil {
				return nil, err
			}
			initial := nostr.Timestamp(m.o.Now().Add(-m.o.Lookback).Unix())
			fs := make(nostr.Filters, 0, len(chs))
			for _, c := range chs {
				since := initial
				if c.V2Cursor != nil {
					since = nostr.Timestamp(max(*c.V2Cursor-int64(m.o.Margin/time.Second), 0))
				}
				fs = append(fs, nostr.Filter{Kinds: []int{mostro.KindDirect}, Authors: []string{c.V2Sign}, Since: &since})
			}
			return fs, nil
		},
		Handle:      m.handle,
		EndOfStored: m.endOfStoredV2,
	}
}

// v2PhaseLocked is the v2 subscription's phase on a relay (curMu held).
func (m *Manager) v2PhaseLocked(relayURL string) *v2Phase {
	p := m.v2Phases[relayURL]
	if p == nil {
		p = &v2Phase{held: map[string]int64{}}
		m.v2Phases[relayURL] = p
	}
	return p
}

// advanceV2Cursor moves a channel's v2 cursor to ts, or holds ts back
// while the relay is still sending stored events.
func (m *Manager) advanceV2Cursor(ctx context.Context, relayURL, party string, ts int64) {
	m.curMu.Lock()
	p := m.v2PhaseLocked(relayURL)
	if !p.stored {
		p.held[party] = max(p.held[party], ts)
		m.curMu.Unlock()
		return
	}
	m.curMu.Unlock()
	if err := m.o.Store.AdvanceChatCursor(ctx, party, ts); err != nil {
		m.o.Logger.Warn("could not advance a chat cursor", "party_trade_pubkey", party, "error", err)
	}
}

// endOfStoredV2 stores the cursors held back until a relay's EOSE.
func (m *Manager) endOfStoredV2(ctx context.Context, relayURL string) error {
	m.curMu.Lock()
	p := m.v2PhaseLocked(relayURL)
	p.stored = true
	held := p.held
	p.held = map[string]int64{}
	m.curMu.Unlock()
	for party, ts := range held {
		if err := m.o.Store.AdvanceChatCursor(ctx, party, ts); err != nil {
			m.o.Logger.Warn("could not advance a chat cursor", "party_trade_pubkey", party, "error", err)
		}
	}
	return nil
}

func (m *Manager) specV1() pool.Spec {
	return pool.Spec{
		Key: SubKeyV1,
		Filters: func(context.Context, string) (nostr.Filters, error) {
			m.mu.Lock()
			addrs := make([]string, 0, len(m.byShared))
			for a := range m.byShared {
				addrs = append(addrs, a)
			}
			m.mu.Unlock()
			if len(addrs) == 0 {
				return nil, nil
			}
			since := nostr.Timestamp(m.o.Now().Add(-m.o.Lookback).Unix())
			return nostr.Filters{{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": addrs}, Since: &since}}, nil
		},
		Handle: m.handle,
	}
}

func (m *Manager) reject(reason string, ev *nostr.Event, relayURL string, party string) {
	m.rejected.WithLabelValues(reason).Inc()
	level := slog.LevelWarn
	if reason == "own_line" || reason == "duplicate_outer" || reason == "duplicate_inner" {
		level = slog.LevelDebug
	}
	m.o.Logger.Log(context.Background(), level, "chat event refused", "reason", reason, "event_id", ev.ID, "kind", ev.Kind,
		"relay", relayURL, "party_trade_pubkey", party)
}

// handle runs the validation order on one delivered event.
func (m *Manager) handle(ctx context.Context, relayURL string, ev *nostr.Event) error {
	// Route by the channel address: author (v2) or p tag (v1).
	m.mu.Lock()
	var c *channel
	switch ev.Kind {
	case mostro.KindDirect:
		c = m.bySign[ev.PubKey]
	case mostro.KindGiftWrap:
		for _, t := range ev.Tags {
			if len(t) >= 2 && t[0] == "p" {
				if c = m.byShared[t[1]]; c != nil {
					break
				}
			}
		}
	}
	m.mu.Unlock()
	if c == nil {
		m.reject("unknown_channel", ev, relayURL, "")
		return nil
	}
	if !m.outerSeen.add(ev.ID) {
		m.reject("duplicate_outer", ev, relayURL, c.party)
		return nil
	}
	if !c.limiter.allow() {
		m.reject("rate_limited", ev, relayURL, c.party)
		return nil
	}
	line, err := m.validator.Validate(*ev, c.keys, c.party)
	if err != nil {
		reason := mchat.ReasonOf(err)
		if reason == "" {
			reason = "invalid"
		}
		m.reject(reason, ev, relayURL, c.party)
		return nil
	}
	if !verify.StorableText(line.Inner.Content) {
		// A party can send anything; text Postgres cannot hold would fail
		// every retry and stall every channel's subscription.
		m.reject(string(verify.Unstorable), ev, relayURL, c.party)
		return nil
	}
	_, inserted, err := m.o.Store.InsertChatLine(ctx, store.ChatLine{
		Party: c.party, InnerID: line.Inner.ID, InnerCreatedAt: int64(line.Inner.CreatedAt), OuterID: ev.ID,
		Form: int(line.Form), Content: line.Inner.Content,
	})
	if err != nil {
		m.outerSeen.remove(ev.ID) // let the redelivery through
		return err
	}
	if line.Form == mchat.FormV2 {
		m.advanceV2Cursor(ctx, relayURL, c.party, min(int64(ev.CreatedAt), m.o.Now().Unix()))
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

// Stream calls send for every stored line of the parties after cursor
// `after`, then for new ones, until ctx ends. Database failures are
// retried.
func (m *Manager) Stream(ctx context.Context, parties []string, after int64, send func(store.ChatLine) error) error {
	pos := after
	backoff := 100 * time.Millisecond
	for {
		wake := m.notifier.C()
		lines, err := m.o.Store.ChatLinesAfter(ctx, parties, pos, 256)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.o.Logger.Warn("chat stream: reading the store failed; retrying", "error", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, l := range lines {
			if err := send(l); err != nil {
				return err
			}
			pos = l.Cursor
		}
		if len(lines) == 256 {
			continue
		}
		t := time.NewTimer(5 * time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// SendResult is the outcome of Send.
type SendResult struct {
	InnerID        string
	InnerCreatedAt int64
	V2ID           string
	V1ID           string
	Delivered      bool
	Duplicate      bool
	Results        []pool.Result
}

// Send sends one line to a party, at most once per idempotency key.
func (m *Manager) Send(ctx context.Context, party, text, key string) (SendResult, error) {
	party, err := normalizeParty(party)
	if err != nil {
		return SendResult{}, err
	}
	if strings.TrimSpace(text) == "" {
		return SendResult{}, reason.With(apperr.InvalidArgument("text must not be empty"), reason.InvalidBody)
	}
	if err := reason.CheckKey(key); err != nil {
		return SendResult{}, err
	}
	mac := m.o.Identity.Fingerprint("chat", party, text)
	log := m.o.Logger.With("idempotency_key", key, "party_trade_pubkey", party)
	if rec, ok, err := m.o.Store.GetChatSend(ctx, key); err != nil {
		return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
	} else if ok {
		return m.again(ctx, log, rec, party, mac)
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return SendResult{}, reason.With(apperr.InvalidArgument("party_trade_pubkey cannot form a chat channel with Serbero's key"), reason.InvalidRecipient)
	}
	now := m.o.Now()
	outer, inner, err := mchat.BuildV2(ck, m.o.Identity.Keys(), text, now)
	if err != nil {
		return SendResult{}, fmt.Errorf("build chat line: %w", err)
	}
	rec := store.ChatSend{Key: key, Party: party, RequestMAC: mac, InnerID: inner.ID, InnerCreatedAt: int64(inner.CreatedAt), V2: outer}
	if m.o.SendLegacy {
		v1, err := mchat.WrapV1(ck, inner, now)
		if err != nil {
			return SendResult{}, fmt.Errorf("build legacy chat line: %w", err)
		}
		rec.V1 = &v1
	}
	inserted, err := m.o.Store.InsertChatSend(ctx, rec)
	if err != nil {
		return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
	}
	if !inserted {
		got, ok, err := m.o.Store.GetChatSend(ctx, key)
		if err != nil || !ok {
			return SendResult{}, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
		}
		return m.again(ctx, log, got, party, mac)
	}
	res := m.publish(ctx, log, rec)
	return res, nil
}

func (m *Manager) again(ctx context.Context, log *slog.Logger, rec store.ChatSend, party, mac string) (SendResult, error) {
	if rec.Party != party || rec.RequestMAC != mac {
		return SendResult{}, reason.With(apperr.InvalidArgument("idempotency_key was already used for a different party or text"), reason.IdempotencyConflict)
	}
	if rec.DeliveredAt != nil {
		r := SendResult{InnerID: rec.InnerID, InnerCreatedAt: rec.InnerCreatedAt, V2ID: rec.V2.ID, Delivered: true, Duplicate: true}
		if rec.V1 != nil {
			r.V1ID = rec.V1.ID
		}
		return r, nil
	}
	r := m.publish(ctx, log, rec)
	r.Duplicate = true
	return r, nil
}

func (m *Manager) publish(ctx context.Context, log *slog.Logger, rec store.ChatSend) SendResult {
	r := SendResult{InnerID: rec.InnerID, InnerCreatedAt: rec.InnerCreatedAt, V2ID: rec.V2.ID}
	r.Results = m.o.Pool.Publish(ctx, rec.V2)
	if rec.V1 != nil {
		r.V1ID = rec.V1.ID
		r.Results = append(r.Results, m.o.Pool.Publish(ctx, *rec.V1)...)
	}
	r.Delivered = pool.AnyAccepted(r.Results)
	if err := m.o.Store.MarkChatAttempt(ctx, rec.Key, r.Delivered); err != nil {
		log.Warn("chat line sent but its delivery could not be recorded", "inner_event_id", rec.InnerID, "error", err)
	}
	log.Info("chat line sent", "inner_event_id", rec.InnerID, "v2_event_id", r.V2ID, "v1_event_id", r.V1ID, "delivered", r.Delivered)
	return r
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

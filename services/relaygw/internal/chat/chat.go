// Package chat runs Serbero's side of the dispute chat channels (one per
// party trade key). The rules are written in docs/relaygw.md#chat.
//
// Keys are derived by pkg/mostro/chat from Serbero's key and the party's
// trade pubkey, never stored: after a restart they are re-derived from the
// registered trade pubkeys (table relaygw_chat_channels, public addresses
// only).
//
// Subscriptions: the active channels are split into chunks of at most
// Options.ChunkSize (MaxChannelsPerREQ) channels, and each chunk has two
// subscriptions of its own, each one REQ with one filter: v2
// {kinds:[14], authors:[pub(K_sign)…], since} from the chunk's oldest
// per-relay cursor, and legacy v1 {kinds:[1059], #p:[pub(shared)…]}
// reaching back [relaygw].giftwrap_lookback_seconds. Both page through the
// relay's stored lines. A REQ thus stays a few kilobytes however many
// channels there are, and a chat subscription's trouble never touches the
// dispute subscription (its own REQ). Retired channels
// (RetireChatChannels) leave their chunk; an emptied chunk is
// unsubscribed.
//
// Inbound: each delivered event is routed by the channel address (author
// for v2, p tag for v1), then checked: the outer-id memory, the stateless
// validation of pkg/mostro/chat (p tag, time window, size, outer
// signature, decrypt, inner signature, inner signer == the party, inner
// kind 1, timestamps), storable text, the durable inner-id dedup, and only
// then the rate limit, per verified sender and per form, counted on the
// lines' own times: junk from outsiders and replays of stored lines never
// count against the party, and a backlog read after an outage is not cut.
// An event is remembered as seen only once accepted or refused for a
// reason its id commits to; a rate-limited or badly signed copy is
// reconsidered when it comes again. Accepted lines are stored (so lines
// arriving while no stream is open are kept) and streamed by cursor.
//
// Outbound: SendChatMessage builds the v2 line (and the legacy form when
// [chat].send_legacy_form), stores the signed events under the
// idempotency key and publishes them; a retry republishes the identical
// events.
package chat

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/apperr"
	mchat "github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/notify"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/store"
	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// Subscription key prefixes (a chunk's keys are prefix + "/" + its id).
const (
	SubKeyV2 = "chat-v2"
	SubKeyV1 = "chat-v1"
)

// Rate limit per channel, verified sender and form, on the lines' own
// times: at most rateMax lines in any rateSpan (the protocol asks for
// about 30 a minute with bursts of 60).
const (
	rateMax  = 60
	rateSpan = 2 * time.Minute
)

// MaxChannelsPerREQ is the default chunk size: the channels one chat REQ
// names. 100 addresses make a REQ of about 7 kB, far below the message
// limits relays enforce (commonly 64 to 512 kB), so no relay drops the
// connection over it.
const MaxChannelsPerREQ = 100

// Page is the REQ limit of the chat subscriptions (stored lines are read
// backwards in pages of at most this many). 100 lines of the largest
// accepted size (64 KiB) fit a subscription's buffer.
const Page = 100

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = reason.MaxKeyLen

// MaxRetire bounds the channels one RetireChatChannels call names.
const MaxRetire = 1000

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
	// ChunkSize is the number of channels per REQ (default
	// MaxChannelsPerREQ).
	ChunkSize int
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

	// upd serialises membership changes with their subscription changes.
	upd sync.Mutex

	mu        sync.Mutex
	channels  map[string]*channel // by party trade pubkey
	bySign    map[string]*channel
	byShared  map[string]*channel
	chunks    []*chunk // in id order
	nextChunk int
	started   bool

	// v2 cursors held back until a relay's EOSE (see subs.go).
	curMu    sync.Mutex
	v2Phases map[phaseKey]*v2Phase
}

type channel struct {
	party string
	keys  mchat.Channel
	// Rate limits of the party's verified lines, one per form.
	v1, v2 *window
	chunk  *chunk
}

// New builds a Manager.
func New(o Options) (*Manager, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = MaxChannelsPerREQ
	}
	m := &Manager{
		o: o, validator: mchat.Validator{Now: o.Now}, notifier: notify.New(), outerSeen: newLRU(20000),
		channels: map[string]*channel{}, bySign: map[string]*channel{}, byShared: map[string]*channel{},
		v2Phases: map[phaseKey]*v2Phase{},
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
	m.upd.Lock()
	defer m.upd.Unlock()
	for _, c := range chs {
		if _, err := m.add(c.Party); err != nil {
			m.o.Logger.Warn("could not derive a registered chat channel", "party_trade_pubkey", c.Party, "error", err)
		}
	}
	m.mu.Lock()
	m.started = true
	chunks := append([]*chunk(nil), m.chunks...)
	m.mu.Unlock()
	for _, ch := range chunks {
		m.subscribe(ch)
	}
	m.o.Logger.Info("chat channels loaded", "channels", len(chs), "subscriptions", 2*len(chunks))
	return nil
}

// Channel derives the public addresses of the channel with party.
func (m *Manager) Channel(party string) (store.ChatChannel, error) {
	c, _, err := m.derive(party)
	return c, err
}

// derive normalises party and derives its channel: the public addresses
// and the keys.
func (m *Manager) derive(party string) (store.ChatChannel, mchat.Channel, error) {
	party, err := normalizeParty(party)
	if err != nil {
		return store.ChatChannel{}, mchat.Channel{}, err
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return store.ChatChannel{}, mchat.Channel{}, reason.With(apperr.InvalidArgument("party_trade_pubkey cannot form a chat channel with Serbero's key"), reason.InvalidRecipient)
	}
	return store.ChatChannel{Party: party, V1Shared: ck.SharedPubkey(), V2Conv: ck.ConvPubkey(), V2Sign: ck.SignPubkey()}, ck, nil
}

// Register registers channels durably (idempotent; a retired channel
// becomes active again) and subscribes to the new ones.
func (m *Manager) Register(ctx context.Context, parties []string) ([]string, error) {
	m.upd.Lock()
	defer m.upd.Unlock()
	var out []string
	var touched []*chunk
	for _, p := range parties {
		c, ck, err := m.derive(p)
		if err != nil {
			return nil, err
		}
		// In memory first: a subscription (re)built from the database
		// would otherwise fetch the channel's lines before the handler
		// knows the channel, and refuse them as unknown_channel. A line
		// that arrives before the row is written fails its insert and is
		// fetched again on the re-subscribe.
		ch := m.addDerived(c.Party, ck)
		if _, err := m.o.Store.RegisterChatChannel(ctx, c); err != nil {
			if ch != nil {
				m.remove(c.Party) // lines of an unregistered channel cannot be stored
			}
			return nil, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
		}
		if ch != nil {
			touched = append(touched, ch)
		}
		out = append(out, c.Party)
	}
	m.resync(touched)
	return out, nil
}

// Retire retires channels durably (idempotent: unknown and already
// retired channels are ignored) and stops subscribing to them. It returns
// how many this call retired.
func (m *Manager) Retire(ctx context.Context, parties []string) (int, error) {
	if len(parties) == 0 {
		return 0, reason.With(apperr.InvalidArgument("party_trade_pubkeys must name at least one party"), reason.InvalidRequest)
	}
	if len(parties) > MaxRetire {
		return 0, reason.With(apperr.InvalidArgument("party_trade_pubkeys names %d parties; at most %d per call", len(parties), MaxRetire), reason.InvalidRequest)
	}
	norm := make([]string, 0, len(parties))
	for _, p := range parties {
		p, err := normalizeParty(p)
		if err != nil {
			return 0, err
		}
		norm = append(norm, p)
	}
	m.upd.Lock()
	defer m.upd.Unlock()
	retired, err := m.o.Store.RetireChatChannels(ctx, norm)
	if err != nil {
		return 0, reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
	}
	var touched []*chunk
	for _, p := range norm {
		if ch := m.remove(p); ch != nil {
			touched = append(touched, ch)
		}
	}
	m.resync(touched)
	if len(retired) > 0 {
		m.o.Logger.Info("chat channels retired", "channels", len(retired))
	}
	return len(retired), nil
}

// add derives and remembers a channel, placing it in a chunk; it returns
// the chunk, or nil when the channel was known.
func (m *Manager) add(party string) (*chunk, error) {
	m.mu.Lock()
	_, ok := m.channels[party]
	m.mu.Unlock()
	if ok {
		return nil, nil
	}
	ck, err := mchat.Derive(m.o.Identity.Keys(), party)
	if err != nil {
		return nil, err
	}
	return m.addDerived(party, ck), nil
}

// addDerived remembers a derived channel (see add).
func (m *Manager) addDerived(party string, ck mchat.Channel) *chunk {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.channels[party]; ok {
		return nil
	}
	c := &channel{party: party, keys: ck, v1: newWindow(rateMax, rateSpan), v2: newWindow(rateMax, rateSpan)}
	m.channels[party] = c
	m.bySign[ck.SignPubkey()] = c
	m.byShared[ck.SharedPubkey()] = c
	m.placeLocked(c)
	return c.chunk
}

// remove forgets a channel; it returns its chunk, or nil when unknown.
func (m *Manager) remove(party string) *chunk {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.channels[party]
	if !ok {
		return nil
	}
	delete(m.channels, party)
	delete(m.bySign, c.keys.SignPubkey())
	delete(m.byShared, c.keys.SharedPubkey())
	ch := c.chunk
	ch.remove(party)
	return ch
}

func normalizeParty(p string) (string, error) {
	p = strings.ToLower(strings.TrimSpace(p))
	if !keys.ValidPubkey(p) {
		return "", reason.With(apperr.InvalidArgument("party_trade_pubkey is not a valid public key (want 64 hex characters)"), reason.InvalidRecipient)
	}
	return p, nil
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
				return nil //nolint:nilerr // the stream ends with ctx (nil, as documented); a read it cut short is no failure
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

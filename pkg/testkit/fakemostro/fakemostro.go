package fakemostro

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/testkit/fakemostro/nostrconn"
)

// Lookback is how far back the node's subscription reaches (gift wraps
// are backdated up to two days; stale requests are dropped by the
// freshness rule anyway).
const Lookback = 7 * 24 * time.Hour

// FreshnessWindow is mostrod's rule: a request whose rumor (v1) or event
// (v2) created_at is older than this is dropped.
const FreshnessWindow = 10 * time.Second

// ReplayWindow is how long the v2 gate remembers event ids.
const ReplayWindow = 60 * time.Second

// Permission is a solver's category in mostrod's users table.
type Permission int

// The solver categories.
const (
	// PermRead (category 1) may take disputes, never settle or cancel.
	PermRead Permission = 1
	// PermReadWrite (category 2) may also settle and cancel, and take over
	// a dispute held by a read solver.
	PermReadWrite Permission = 2
)

// String names the permission as admin-add-solver spells it.
func (p Permission) String() string {
	if p == PermRead {
		return "read"
	}
	return "read-write"
}

// Config describes the node. Zero values are mostrod's defaults.
type Config struct {
	// Keys is the node key; zero means a fresh key.
	Keys keys.Keys
	// ProtocolVersion is 1 (gift wrap) or 2 (kind 14); 0 means 2.
	ProtocolVersion int
	// AcceptBoth accepts both transports (a real node speaks one); replies
	// use the version the request came in.
	AcceptBoth bool
	// OmitProtocolVersionTag publishes the info event without the
	// protocol_version tag (an old node: readers must assume v1).
	OmitProtocolVersionTag bool
	// PoW is the difficulty every inbound event must meet.
	PoW int
	// PoWFirstContact is the v2 difficulty for unknown senders; it is
	// advertised and enforced as max(PoW, PoWFirstContact).
	PoWFirstContact int
	// OmitPoWFirstContactTag leaves pow_first_contact out of the info event
	// (it is still enforced).
	OmitPoWFirstContactTag bool
	// MostroVersion is the mostro_version tag; "" means "0.18.5".
	MostroVersion string
	// Name is the instance name in the y tag; "" gives ["y","mostro"].
	Name string
	// PublishedAtTag names the dispute-open-time tag published_at (newer
	// nodes) instead of created_at.
	PublishedAtTag bool
	// DisputeExpiration is the 38386 expiration tag offset; 0 means 30
	// days, negative omits the tag.
	DisputeExpiration time.Duration
	// DMExpiration is the v2 reply expiration offset; 0 means 30 days.
	DMExpiration time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Behavior scripts misbehaviour. Change it at any time with SetBehavior or
// UpdateBehavior; it applies to requests processed afterwards.
type Behavior struct {
	// SilentTakes: never answer admin-take-dispute (and change nothing).
	SilentTakes bool
	// TakeCantDo: answer every admin-take-dispute with this cant-do
	// reason, authorized or not (and change nothing).
	TakeCantDo mostro.CantDoReason
	// ReplyFrom: sign every reply with this key instead of the node's.
	ReplyFrom keys.Keys
	// MismatchPayloadID: the admin-took-dispute payload names another
	// dispute id than the message id.
	MismatchPayloadID bool
	// OmitBuyerPubkey, OmitSellerPubkey: null trade keys in the
	// SolverDisputeInfo.
	OmitBuyerPubkey, OmitSellerPubkey bool
	// SameBuyerSeller: the SolverDisputeInfo names the buyer's trade key as
	// seller too.
	SameBuyerSeller bool
	// LegacyRumorKind14: v1 replies are NIP-17 rumors of kind 14 with a p
	// tag (the reference simulator) instead of kind 1.
	LegacyRumorKind14 bool
	// ReplyDelay delays every reply to a request.
	ReplyDelay time.Duration
	// DuplicateReplies sends each reply this many extra times (each a
	// distinct event, as a retrying node would).
	DuplicateReplies int
	// SameSecondRevisions stamps a dispute revision with the previous
	// revision's created_at instead of strictly after it.
	SameSecondRevisions bool
}

// Order is the node's view of an order under dispute.
type Order struct {
	ID, Kind, Status, PreviousStatus string
	// BuyerPubkey, SellerPubkey are the parties' trade keys.
	BuyerPubkey, SellerPubkey string
	// BuyerFullPrivacy, SellerFullPrivacy hide that party's reputation.
	BuyerFullPrivacy, SellerFullPrivacy bool
	// BuyerInfo, SellerInfo are the reputations sent when not private.
	BuyerInfo, SellerInfo                        *mostro.UserInfo
	Hash, Preimage, BuyerInvoice                 *string
	Premium, Amount, FiatAmount, Fee, RoutingFee int64
	PaymentMethod                                string
	InvoiceHeldAt, CreatedAt                     int64
	BuyerDispute, SellerDispute                  bool
}

// Dispute is the node's dispute row.
type Dispute struct {
	ID, OrderID string
	Status      mostro.DisputeStatus
	// Initiator is "buyer" or "seller".
	Initiator string
	// Solver is the assigned solver's identity key ("" before a take).
	Solver    string
	TakenAt   int64
	CreatedAt int64
	// OmitInitiatorTag, UnknownInitiatorTag change how its revisions
	// carry the initiator (an old node; the auto-close disagreement case).
	OmitInitiatorTag, UnknownInitiatorTag bool
}

// Request is a protocol message that passed the intake rules.
type Request struct {
	Action   mostro.Action
	ID       string
	Sender   string
	Identity string
	Version  int
	EventID  string
	Message  mostro.Message
}

// Sent is a message the node sent.
type Sent struct {
	To      string
	Message mostro.Message
	Event   nostr.Event
}

// Drop reasons, as counted by Drops.
const (
	DropPoW              = "pow"                 // outer event below pow
	DropKind             = "kind"                // not the configured transport's kind
	DropSignature        = "signature"           // outer event id or signature invalid
	DropReplay           = "replay"              // v2 event id seen within the replay window
	DropFirstContactPoW  = "first_contact_pow"   // v2 unknown sender below pow_first_contact
	DropNotForMe         = "not_for_me"          // content does not decrypt with the node key
	DropRumorKind        = "rumor_kind"          // v1 rumor not kind 1
	DropBadSignature     = "bad_tuple_signature" // tuple signature / identity proof does not verify
	DropMalformed        = "malformed"           // anything else unparseable
	DropStale            = "stale"               // rumor/event created_at older than 10 s
	DropMissingSignature = "missing_signature"   // identity != trade key without a signature
	DropVerify           = "verify"              // MessageKind::verify failed (e.g. no id)
	DropUnknownDispute   = "unknown_dispute"     // take for an unknown dispute: internal error, no reply
	DropUnknownOrder     = "unknown_order"       // settle/cancel for an unknown order
	DropAddSolverNotNode = "add_solver_not_node" // admin-add-solver from another key: no reply
	DropAddSolverBadNpub = "add_solver_bad_npub" // not a bech32 npub: no reply
	DropUnhandled        = "unhandled_action"    // an action the fake does not model
	DropSilentTake       = "silent_take"         // Behavior.SilentTakes
)

// Mostro is a running fake node.
type Mostro struct {
	t    reporter
	cfg  Config
	keys keys.Keys
	conn *nostrconn.Conn
	ctx  context.Context
	stop context.CancelFunc

	in chan *nostr.Event
	wg sync.WaitGroup

	mu        sync.Mutex
	behavior  Behavior
	solvers   map[string]Permission
	orders    map[string]*Order
	disputes  map[string]*Dispute
	revisions map[string][]nostr.Event
	lastRev   map[string]nostr.Timestamp
	replay    map[string]time.Time
	drops     map[string]int
	requests  []Request
	sent      []Sent
	published []nostr.Event
	info      nostr.Event
	changed   chan struct{}
}

// reporter is what the node needs from its host to report problems:
// testing.TB for Start, a logger for Run.
type reporter interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Start connects a fake node to the relays, subscribes to requests
// addressed to it (both kinds; the wrong one is dropped by the intake
// rules), publishes its info event and returns. It stops at the end of
// the test.
func Start(t testing.TB, cfg Config, relayURLs ...string) *Mostro {
	t.Helper()
	m, err := start(t, cfg, relayURLs)
	if err != nil {
		t.Fatalf("fakemostro: %v", err)
	}
	t.Cleanup(m.Close)
	return m
}

// Run is Start outside a test (the development node of `serbero devtool
// mostro`): problems a test would fail on are logged to log at error
// level, a relay that cannot be subscribed to is an error, and the caller
// stops the node with Close.
func Run(cfg Config, log *slog.Logger, relayURLs ...string) (*Mostro, error) {
	return start(logReporter{log: log}, cfg, relayURLs)
}

func start(t reporter, cfg Config, relayURLs []string) (*Mostro, error) {
	if cfg.Keys.IsZero() {
		cfg.Keys = keys.Generate()
	}
	if cfg.ProtocolVersion == 0 {
		cfg.ProtocolVersion = mostro.ProtocolV2
	}
	if cfg.MostroVersion == "" {
		cfg.MostroVersion = "0.18.5"
	}
	if cfg.DisputeExpiration == 0 {
		cfg.DisputeExpiration = 30 * 24 * time.Hour
	}
	if cfg.DMExpiration == 0 {
		cfg.DMExpiration = 30 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &Mostro{
		t: t, cfg: cfg, keys: cfg.Keys, ctx: ctx, stop: cancel,
		in:      make(chan *nostr.Event, 1024),
		solvers: map[string]Permission{}, orders: map[string]*Order{}, disputes: map[string]*Dispute{},
		revisions: map[string][]nostr.Event{}, lastRev: map[string]nostr.Timestamp{},
		replay: map[string]time.Time{}, drops: map[string]int{}, changed: make(chan struct{}),
	}
	since := nostr.Timestamp(cfg.Now().Add(-Lookback).Unix())
	filters := nostr.Filters{{
		Kinds: []int{mostro.KindGiftWrap, mostro.KindDirect},
		Tags:  nostr.TagMap{"p": {m.keys.PublicKey()}},
		Since: &since,
	}}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-m.in:
				m.process(evt)
			}
		}
	}()
	conn, err := nostrconn.Open(relayURLs, filters, func(_ string, evt *nostr.Event) {
		select {
		case m.in <- evt:
		case <-ctx.Done():
		}
	})
	if err != nil {
		cancel()
		m.wg.Wait()
		return nil, err
	}
	m.conn = conn
	m.PublishInfo()
	return m, nil
}

// Close disconnects the node and stops it (Start does it at the end of
// the test). It is safe to call more than once.
func (m *Mostro) Close() {
	m.conn.Close()
	m.stop()
	m.wg.Wait()
}

// logReporter reports to a logger: Run's host.
type logReporter struct{ log *slog.Logger }

func (logReporter) Helper() {}

func (r logReporter) Logf(format string, args ...any) {
	r.log.Warn(fmt.Sprintf(format, args...))
}

func (r logReporter) Errorf(format string, args ...any) {
	r.log.Error(fmt.Sprintf(format, args...))
}

func (r logReporter) Fatalf(format string, args ...any) {
	r.log.Error(fmt.Sprintf(format, args...))
}

// Pubkey is the node's public key.
func (m *Mostro) Pubkey() string { return m.keys.PublicKey() }

// Keys is the node key (the admin key: tests send admin-add-solver with it).
func (m *Mostro) Keys() keys.Keys { return m.keys }

// ProtocolVersion is the version the node speaks now.
func (m *Mostro) ProtocolVersion() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cfg.ProtocolVersion
}

// SetBehavior replaces the scripted misbehaviour.
func (m *Mostro) SetBehavior(b Behavior) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.behavior = b
}

// UpdateBehavior edits the scripted misbehaviour.
func (m *Mostro) UpdateBehavior(f func(*Behavior)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.behavior)
}

func (m *Mostro) now() time.Time { return m.cfg.Now() }

// effectiveFirstContact is max(pow, pow_first_contact), as mostrod
// advertises and enforces it.
func (m *Mostro) effectiveFirstContact() int {
	return max(m.cfg.PoW, m.cfg.PoWFirstContact)
}

// PublishInfo publishes the kind-38385 info event with mostrod's tags.
func (m *Mostro) PublishInfo() nostr.Event {
	m.t.Helper()
	m.mu.Lock()
	cfg := m.cfg
	pfc := m.effectiveFirstContact()
	m.mu.Unlock()
	tags := nostr.Tags{
		{"d", m.keys.PublicKey()},
		{"mostro_version", cfg.MostroVersion},
		{"mostro_commit_hash", "0000000000000000000000000000000000000000"},
		{"max_order_amount", "1000000"},
		{"min_order_amount", "100"},
		{"expiration_hours", "24"},
		{"expiration_seconds", "900"},
		{"fiat_currencies_accepted", ""},
		{"max_orders_per_response", "10"},
		{"fee", "0.006"},
		{"pow", strconv.Itoa(cfg.PoW)},
	}
	if !cfg.OmitPoWFirstContactTag {
		tags = append(tags, nostr.Tag{"pow_first_contact", strconv.Itoa(pfc)})
	}
	if !cfg.OmitProtocolVersionTag {
		tags = append(tags, nostr.Tag{"protocol_version", strconv.Itoa(cfg.ProtocolVersion)})
	}
	tags = append(tags,
		nostr.Tag{"lnd_version", "0.19.1-beta"},
		nostr.Tag{"lnd_node_pubkey", "02" + m.keys.PublicKey()},
		nostr.Tag{"lnd_node_alias", "fakemostro"},
		nostr.Tag{"lnd_chains", "bitcoin"},
		nostr.Tag{"lnd_networks", "regtest"},
		nostr.Tag{"lnd_uris", ""},
		nostr.Tag{"z", "info"},
	)
	m.mu.Lock()
	ts := nostr.Timestamp(m.now().Unix())
	if ts <= m.info.CreatedAt {
		ts = m.info.CreatedAt + 1
	}
	m.mu.Unlock()
	evt := nostr.Event{CreatedAt: ts, Kind: mostro.KindInfo, Tags: tags, Content: ""}
	if err := m.keys.Sign(&evt); err != nil {
		m.t.Fatalf("fakemostro: sign info: %v", err)
	}
	m.mu.Lock()
	m.info = evt
	m.mu.Unlock()
	m.publish(evt)
	return evt
}

// InfoEvent is the last published info event.
func (m *Mostro) InfoEvent() nostr.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// Reconfigure changes the node's protocol version and PoW settings (as an
// operator restart would) and republishes the info event.
func (m *Mostro) Reconfigure(f func(*Config)) nostr.Event {
	m.mu.Lock()
	f(&m.cfg)
	m.mu.Unlock()
	return m.PublishInfo()
}

// AddSolver registers a solver directly (what admin-add-solver does).
func (m *Mostro) AddSolver(pubkey string, perm Permission) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.solvers[pubkey] = perm
	m.notifyLocked()
}

// Solver returns a solver's permission.
func (m *Mostro) Solver(pubkey string) (Permission, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.solvers[pubkey]
	return p, ok
}

// DisputeSpec describes a dispute to open. Zero fields get defaults
// (random ids and trade keys, a sell order in fiat-sent, the buyer as
// initiator, the amounts of the protocol docs' example).
type DisputeSpec struct {
	DisputeID, OrderID string
	// BuyerPubkey, SellerPubkey are the parties' trade keys (use the fake
	// parties' keys so they can chat).
	BuyerPubkey, SellerPubkey string
	// Initiator is "buyer" or "seller".
	Initiator string
	// Kind is the order kind, "sell" or "buy".
	Kind string
	// BuyerFullPrivacy, SellerFullPrivacy hide that party's reputation.
	BuyerFullPrivacy, SellerFullPrivacy bool
	// OmitInitiatorTag, UnknownInitiatorTag shape the initiator tag of the
	// dispute's revisions.
	OmitInitiatorTag, UnknownInitiatorTag bool
}

// OpenDispute records an order in dispute and publishes the dispute's
// initiated revision, as mostrod does when a party sends `dispute`.
func (m *Mostro) OpenDispute(spec DisputeSpec) Dispute {
	m.t.Helper()
	if spec.DisputeID == "" {
		spec.DisputeID = NewUUID()
	}
	if spec.OrderID == "" {
		spec.OrderID = NewUUID()
	}
	if spec.BuyerPubkey == "" {
		spec.BuyerPubkey = keys.Generate().PublicKey()
	}
	if spec.SellerPubkey == "" {
		spec.SellerPubkey = keys.Generate().PublicKey()
	}
	if spec.Initiator == "" {
		spec.Initiator = "buyer"
	}
	if spec.Kind == "" {
		spec.Kind = "sell"
	}
	now := m.now().Unix()
	hash := "0f9c1d5e3b7a2c4d6e8f00112233445566778899aabbccddeeff001122334455"
	o := &Order{
		ID: spec.OrderID, Kind: spec.Kind, Status: "dispute", PreviousStatus: "fiat-sent",
		BuyerPubkey: spec.BuyerPubkey, SellerPubkey: spec.SellerPubkey,
		BuyerFullPrivacy: spec.BuyerFullPrivacy, SellerFullPrivacy: spec.SellerFullPrivacy,
		BuyerInfo:  &mostro.UserInfo{Rating: 4.5, Reviews: 10, OperatingDays: 30},
		SellerInfo: &mostro.UserInfo{Rating: 5, Reviews: 3, OperatingDays: 7},
		Hash:       &hash, PaymentMethod: "SEPA", Amount: 21000, FiatAmount: 100, Fee: 210,
		InvoiceHeldAt: now - 600, CreatedAt: now - 3600,
		BuyerDispute: spec.Initiator == "buyer", SellerDispute: spec.Initiator == "seller",
	}
	d := &Dispute{
		ID: spec.DisputeID, OrderID: spec.OrderID, Status: mostro.DisputeInitiated, Initiator: spec.Initiator,
		CreatedAt: now, OmitInitiatorTag: spec.OmitInitiatorTag, UnknownInitiatorTag: spec.UnknownInitiatorTag,
	}
	m.mu.Lock()
	m.orders[o.ID] = o
	m.disputes[d.ID] = d
	m.mu.Unlock()
	m.publishRevision(d.ID)
	return m.Dispute(d.ID)
}

// Dispute returns a copy of a dispute row (zero if unknown).
func (m *Mostro) Dispute(id string) Dispute {
	m.mu.Lock()
	defer m.mu.Unlock()
	if d := m.disputes[id]; d != nil {
		return *d
	}
	return Dispute{}
}

// Order returns a copy of an order (zero if unknown).
func (m *Mostro) Order(id string) Order {
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.orders[id]; o != nil {
		return *o
	}
	return Order{}
}

// TakeOver assigns a dispute to solver and publishes the in-progress
// revision without any DM: another solver (e.g. a write solver using its
// own client) took it over.
func (m *Mostro) TakeOver(disputeID, solver string) nostr.Event {
	m.t.Helper()
	m.mu.Lock()
	d := m.disputes[disputeID]
	if d == nil {
		m.mu.Unlock()
		m.t.Fatalf("fakemostro: TakeOver: unknown dispute %s", disputeID)
		return nostr.Event{}
	}
	d.Status, d.Solver, d.TakenAt = mostro.DisputeInProgress, solver, m.now().Unix()
	m.mu.Unlock()
	return m.publishRevision(disputeID)
}

// SetStatus moves a dispute to status and publishes the revision without
// any DM: the auto-close paths (cooperative cancel → seller-refunded,
// seller release → settled), cooperatively-canceled, or any status a test
// needs (unknown ones too).
func (m *Mostro) SetStatus(disputeID string, status mostro.DisputeStatus) nostr.Event {
	m.t.Helper()
	m.mu.Lock()
	d := m.disputes[disputeID]
	if d == nil {
		m.mu.Unlock()
		m.t.Fatalf("fakemostro: SetStatus: unknown dispute %s", disputeID)
		return nostr.Event{}
	}
	d.Status = status
	m.mu.Unlock()
	return m.publishRevision(disputeID)
}

// Revisions returns every revision published for a dispute, oldest first.
func (m *Mostro) Revisions(disputeID string) []nostr.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]nostr.Event(nil), m.revisions[disputeID]...)
}

// ReplayRevision republishes an earlier revision unchanged (index into
// Revisions), as a relay serving stale data would.
func (m *Mostro) ReplayRevision(disputeID string, index int) nostr.Event {
	m.t.Helper()
	revs := m.Revisions(disputeID)
	if index < 0 || index >= len(revs) {
		m.t.Fatalf("fakemostro: ReplayRevision: dispute %s has %d revisions", disputeID, len(revs))
		return nostr.Event{}
	}
	m.publish(revs[index])
	return revs[index]
}

// publishRevision builds and publishes the dispute's current revision
// exactly as mostrod does: tags d, expiration, s, initiator, created_at
// (or published_at), y, z; empty content; created_at strictly after the
// previous revision of the same d.
func (m *Mostro) publishRevision(disputeID string) nostr.Event {
	m.mu.Lock()
	d := *m.disputes[disputeID]
	b := m.behavior
	now := m.now()
	ts := nostr.Timestamp(now.Unix())
	if last, ok := m.lastRev[disputeID]; ok {
		switch {
		case b.SameSecondRevisions:
			ts = last
		case ts <= last:
			ts = last + 1
		}
	}
	m.lastRev[disputeID] = ts
	cfg := m.cfg
	m.mu.Unlock()

	tags := nostr.Tags{{"d", d.ID}}
	if cfg.DisputeExpiration > 0 {
		tags = append(tags, nostr.Tag{"expiration", strconv.FormatInt(ts.Time().Add(cfg.DisputeExpiration).Unix(), 10)})
	}
	tags = append(tags, nostr.Tag{"s", string(d.Status)})
	switch {
	case d.OmitInitiatorTag:
	case d.UnknownInitiatorTag:
		tags = append(tags, nostr.Tag{"initiator", "unknown"})
	default:
		tags = append(tags, nostr.Tag{"initiator", d.Initiator})
	}
	openTag := "created_at"
	if cfg.PublishedAtTag {
		openTag = "published_at"
	}
	tags = append(tags, nostr.Tag{openTag, strconv.FormatInt(d.CreatedAt, 10)})
	if cfg.Name != "" {
		tags = append(tags, nostr.Tag{"y", "mostro", cfg.Name})
	} else {
		tags = append(tags, nostr.Tag{"y", "mostro"})
	}
	tags = append(tags, nostr.Tag{"z", "dispute"})
	evt := nostr.Event{CreatedAt: ts, Kind: mostro.KindDispute, Tags: tags, Content: ""}
	if err := m.keys.Sign(&evt); err != nil {
		m.t.Fatalf("fakemostro: sign dispute event: %v", err)
	}
	m.mu.Lock()
	m.revisions[disputeID] = append(m.revisions[disputeID], evt)
	m.mu.Unlock()
	m.publish(evt)
	return evt
}

// publish sends evt to the relays; a failure is logged, not fatal (tests
// inject relay faults).
func (m *Mostro) publish(evt nostr.Event) {
	if err := m.conn.Publish(m.ctx, evt); err != nil {
		m.t.Logf("fakemostro: publish kind %d %s: %v", evt.Kind, evt.ID, err)
	}
	m.mu.Lock()
	m.published = append(m.published, evt)
	m.notifyLocked()
	m.mu.Unlock()
}

// Published returns every event the node published, in order.
func (m *Mostro) Published() []nostr.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]nostr.Event(nil), m.published...)
}

// Drops returns how many inbound events were dropped per reason.
func (m *Mostro) Drops() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]int, len(m.drops))
	for k, v := range m.drops {
		out[k] = v
	}
	return out
}

// Requests returns the requests that passed the intake rules, in order.
func (m *Mostro) Requests() []Request {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Request(nil), m.requests...)
}

// SentMessages returns every protocol message the node sent, in order.
func (m *Mostro) SentMessages() []Sent {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Sent(nil), m.sent...)
}

// WaitFor waits until cond holds (re-checked whenever the node's state
// changes) and fails the test after timeout.
func (m *Mostro) WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		ch := m.changed
		m.mu.Unlock()
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("fakemostro: timed out after %s waiting for %s (drops %v)", timeout, what, m.Drops())
			return
		}
	}
}

// WaitDrop waits until at least n events were dropped for reason.
func (m *Mostro) WaitDrop(t testing.TB, reason string, n int, timeout time.Duration) {
	t.Helper()
	m.WaitFor(t, timeout, fmt.Sprintf("%d drop(s) for %s", n, reason), func() bool { return m.Drops()[reason] >= n })
}

// WaitRequest waits for an accepted request with the given action (and
// id, unless empty) and returns it.
func (m *Mostro) WaitRequest(t testing.TB, action mostro.Action, id string, timeout time.Duration) Request {
	t.Helper()
	var got Request
	m.WaitFor(t, timeout, fmt.Sprintf("request %s %s", action, id), func() bool {
		for _, r := range m.Requests() {
			if r.Action == action && (id == "" || r.ID == id) {
				got = r
				return true
			}
		}
		return false
	})
	return got
}

// AssertNoRequest fails as soon as a request with action (and id, unless
// empty) is accepted within the window.
func (m *Mostro) AssertNoRequest(t testing.TB, action mostro.Action, id string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		ch := m.changed
		m.mu.Unlock()
		for _, r := range m.Requests() {
			if r.Action == action && (id == "" || r.ID == id) {
				t.Fatalf("fakemostro: unexpected %s request for %q from %s", action, r.ID, r.Sender)
				return
			}
		}
		select {
		case <-ch:
		case <-deadline.C:
			return
		}
	}
}

func (m *Mostro) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

func (m *Mostro) dropLocked(reason string) {
	m.drops[reason]++
	m.notifyLocked()
}

func (m *Mostro) drop(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.dropLocked(reason)
}

// NewUUID returns a random lowercase hyphenated UUID v4.
func NewUUID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

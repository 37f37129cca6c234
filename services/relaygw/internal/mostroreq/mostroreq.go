// Package mostroreq sends Mostro protocol requests and awaits the
// correlated reply.
//
// Sending: the node's protocol version and proof-of-work demands are read
// from the kind 38385 info cache before each request (the info
// subscription keeps it current; when nothing is cached yet it is fetched
// once; a node without any info event is spoken to in v1, as Mostrix does).
// The message is built by pkg/mostro/transport (v2: signed kind 14, NIP-44
// to Mostro, expiration tag, tuple [message, null, null]; v1: gift wrap,
// rumor kind 1, tuple [message, null]) with inner created_at = now. Proof
// of work: the node's pow, and on v2 its pow_first_contact on every take
// (mostrod applies it to every sender outside its active set, on every
// event; relaygw cannot know whether Serbero is in it). A node advertising
// another protocol version gets FailedPrecondition.
//
// Replies: subscriptions on v1 gift wraps {kinds:[1059], #p:[serbero]}
// (reaching back [relaygw].giftwrap_lookback_seconds: wraps are back-dated)
// and v2 {kinds:[14], authors:[mostro], #p:[serbero]}. A reply is matched
// to a pending request when its sender (v1: rumor author and seal signer;
// v2: event author) is the Mostro node, its message id is the request id,
// its inner created_at is not older than the request (minus the 10 s clock
// tolerance the protocol itself assumes), and a dispute payload names the
// requested dispute. Anything else (stale replies from earlier attempts,
// replies about other disputes, replies from other keys) is ignored.
package mostroreq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/transport"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/mostroinfo"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
)

// Subscription keys.
const (
	SubKeyV1 = "mostro-replies-v1"
	SubKeyV2 = "mostro-replies-v2"
)

// Timeouts of the reply wait.
const (
	DefaultTimeout = 15 * time.Second
	MaxTimeout     = 60 * time.Second
)

// ClockTolerance is how much older than the request a reply's inner
// created_at may be: mostrod drops requests more than 10 s old, so the
// protocol already assumes clocks within that.
const ClockTolerance = 10 * time.Second

// RequestExpiration is the lifetime of the NIP-40 expiration tag on v2
// requests.
const RequestExpiration = 24 * time.Hour

// Options configures a Requester.
type Options struct {
	Identity   *identity.Identity
	Mostro     string
	Pool       *pool.Pool
	Info       *mostroinfo.Cache
	Lookback   time.Duration
	Logger     *slog.Logger
	Rejected   *prometheus.CounterVec
	Registerer prometheus.Registerer
	// Clock is the clock (nil: the real one).
	Clock clockwork.Clock
}

// Requester sends requests and matches replies.
type Requester struct {
	o        Options
	requests *prometheus.CounterVec
	replies  *prometheus.CounterVec

	mu      sync.Mutex
	pending map[string][]*waiter // by message id
}

type waiter struct {
	id     string
	sentAt time.Time
	reply  chan Reply
}

// Request is one request to send.
type Request struct {
	Action  mostro.Action
	ID      string
	Timeout time.Duration
	// FirstContact is accepted for compatibility: v2 takes always carry
	// the first-contact proof of work.
	FirstContact bool
}

// Reply is a correlated reply.
type Reply struct {
	Message   mostro.Message
	EventID   string
	CreatedAt nostr.Timestamp
	Version   transport.Version
}

// Response is the outcome of Send.
type Response struct {
	ProtocolVersion int
	RequestEventID  string
	PoW             int
	Reply           Reply
}

// New builds a Requester.
func New(o Options) (*Requester, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	r := &Requester{o: o, pending: map[string][]*waiter{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_mostro_requests_total",
			Help: "Mostro requests by action, protocol version and result (reply, cant_do, timeout, unpublished).",
		}, []string{"action", "protocol_version", "result"}),
		replies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_mostro_replies_ignored_total",
			Help: "Messages from the Mostro node that matched no pending request (stale, other dispute, unsolicited).",
		}, []string{"reason"}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{r.requests, r.replies} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return r, nil
}

// Specs are the reply subscriptions.
func (r *Requester) Specs(_ pool.Cursors, margin time.Duration) []pool.Spec {
	self := r.o.Identity.PublicKey()
	v2Back := max(margin, 2*MaxTimeout)
	return []pool.Spec{
		{
			Key: SubKeyV1,
			Filters: func(context.Context, string) (nostr.Filters, error) {
				since := nostr.Timestamp(r.o.Clock.Now().Add(-r.o.Lookback).Unix())
				return nostr.Filters{{Kinds: []int{mostro.KindGiftWrap}, Tags: nostr.TagMap{"p": {self}}, Since: &since}}, nil
			},
			Handle: r.handle,
		},
		{
			Key: SubKeyV2,
			Filters: func(context.Context, string) (nostr.Filters, error) {
				since := nostr.Timestamp(r.o.Clock.Now().Add(-v2Back).Unix())
				return nostr.Filters{{Kinds: []int{mostro.KindDirect}, Authors: []string{r.o.Mostro}, Tags: nostr.TagMap{"p": {self}}, Since: &since}}, nil
			},
			Handle: r.handle,
		},
	}
}

func (r *Requester) hasPending() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.pending) > 0
}

// handle opens a delivered event and hands it to the matching request.
// Without pending requests nothing is decrypted.
func (r *Requester) handle(_ context.Context, relayURL string, ev *nostr.Event) error {
	if !r.hasPending() {
		return nil
	}
	rec, err := transport.Open(*ev, r.o.Identity.Keys(), transport.OpenOptions{})
	if err != nil {
		why := "malformed"
		switch {
		case errors.Is(err, transport.ErrNotForMe):
			why = "not_for_me"
		case errors.Is(err, transport.ErrBadSignature):
			why = "bad_signature"
		}
		r.o.Rejected.WithLabelValues("mostro_replies", why).Inc()
		r.o.Logger.Debug("ignored an event on the mostro reply subscription", "relay", relayURL, "event_id", ev.ID, "reason", why)
		return nil
	}
	if rec.Sender != r.o.Mostro || rec.Identity != r.o.Mostro {
		// v1 wraps to Serbero from anyone land here: not a reply.
		r.replies.WithLabelValues("other_sender").Inc()
		return nil
	}
	id := rec.Message.Kind.ID
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.pending[id]
	if len(ws) == 0 {
		r.replies.WithLabelValues("unmatched").Inc()
		r.o.Logger.Debug("ignored a mostro message matching no pending request", "event_id", ev.ID, "action", string(rec.Message.Kind.Action), "id", id)
		return nil
	}
	created := time.Unix(int64(rec.CreatedAt), 0)
	keep := ws[:0]
	for _, w := range ws {
		switch {
		case created.Before(w.sentAt.Add(-ClockTolerance)):
			r.replies.WithLabelValues("stale").Inc()
			r.o.Logger.Info("ignored a stale mostro reply (older than the request)", "event_id", ev.ID, "action", string(rec.Message.Kind.Action), "id", id)
			keep = append(keep, w)
		case aboutOtherDispute(rec.Message, w.id):
			r.replies.WithLabelValues("other_dispute").Inc()
			r.o.Logger.Info("ignored a mostro reply about another dispute", "event_id", ev.ID, "id", id)
			keep = append(keep, w)
		default:
			w.reply <- Reply{Message: rec.Message, EventID: ev.ID, CreatedAt: rec.CreatedAt, Version: rec.Version}
		}
	}
	if len(keep) == 0 {
		delete(r.pending, id)
	} else {
		r.pending[id] = keep
	}
	return nil
}

// aboutOtherDispute reports a dispute payload naming another dispute.
func aboutOtherDispute(m mostro.Message, id string) bool {
	p := m.Kind.Payload
	if p == nil || p.Dispute == nil {
		return false
	}
	got, err := mostro.NormalizeUUID(p.Dispute.ID)
	return err != nil || got != id
}

// Send sends one request and waits for its reply.
func (r *Requester) Send(ctx context.Context, req Request) (Response, error) {
	if req.Action != mostro.ActionAdminTakeDispute {
		return Response{}, reason.With(apperr.InvalidArgument("action %q cannot be sent", string(req.Action)), reason.InvalidRequest)
	}
	id, err := mostro.NormalizeUUID(req.ID)
	if err != nil {
		return Response{}, reason.With(apperr.InvalidArgument("id must be a UUID (the dispute id)"), reason.InvalidRequest)
	}
	timeout := req.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	timeout = min(timeout, MaxTimeout)

	info, err := r.nodeInfo(ctx)
	if err != nil {
		return Response{}, err
	}
	if info.ProtocolVersion != mostro.ProtocolV1 && info.ProtocolVersion != mostro.ProtocolV2 {
		return Response{}, reason.With(apperr.FailedPrecondition("the Mostro node advertises protocol version %d, which Serbero does not speak (1 or 2)", info.ProtocolVersion), reason.ProtocolUnsupported)
	}
	version := transport.Version(info.ProtocolVersion)
	// On v2, mostrod demands pow_first_contact from every sender outside
	// its active set (parties of open orders, solvers of disputes in
	// progress), on every event, and rebuilds that set only every minute:
	// a take is first contact unless Serbero already holds that dispute,
	// which relaygw cannot know for sure. So takes always carry it.
	difficulty := info.PoW
	if version == transport.V2 {
		difficulty = max(difficulty, info.PoWFirstContact)
	}
	msg, err := mostro.NewAdminTakeDispute(uint8(version), id)
	if err != nil {
		return Response{}, reason.With(apperr.InvalidArgument("invalid request: %v", err), reason.InvalidRequest)
	}
	labels := func(result string) prometheus.Counter {
		return r.requests.WithLabelValues(string(req.Action), fmt.Sprint(int(version)), result)
	}

	w := &waiter{id: id, sentAt: r.o.Clock.Now(), reply: make(chan Reply, 1)}
	r.mu.Lock()
	r.pending[id] = append(r.pending[id], w)
	r.mu.Unlock()
	defer r.forget(w)

	opts := transport.Options{Now: r.o.Clock.Now, PoW: difficulty}
	if version == transport.V2 {
		opts.Expiration = r.o.Clock.Now().Add(RequestExpiration)
	}
	ev, err := transport.Build(ctx, version, msg, r.o.Identity.Keys(), r.o.Mostro, opts)
	if err != nil {
		return Response{}, fmt.Errorf("build %s: %w", req.Action, err)
	}
	results := r.o.Pool.Publish(ctx, ev)
	log := r.o.Logger.With("action", string(req.Action), "id", id, "event_id", ev.ID, "protocol_version", int(version), "pow", difficulty)
	if !pool.AnyAccepted(results) {
		labels("unpublished").Inc()
		log.Warn("no relay accepted the mostro request", "relays", summary(results))
		return Response{}, reason.With(apperr.Unavailable("no relay accepted the request (%s)", summary(results)), reason.RelaysUnavailable)
	}
	log.Info("mostro request sent; waiting for the reply", "timeout", timeout.String())

	t := r.o.Clock.NewTimer(timeout)
	defer t.Stop()
	select {
	case rep := <-w.reply:
		result := "reply"
		if rep.Message.Kind.Action == mostro.ActionCantDo {
			result = "cant_do"
		}
		labels(result).Inc()
		log.Info("mostro replied", "reply_action", string(rep.Message.Kind.Action), "reply_event_id", rep.EventID)
		return Response{ProtocolVersion: int(version), RequestEventID: ev.ID, PoW: difficulty, Reply: rep}, nil
	case <-t.Chan():
		labels("timeout").Inc()
		log.Warn("no reply from the mostro node", "timeout", timeout.String())
		return Response{}, reason.With(apperr.New(apperr.KindDeadlineExceeded, "no reply from the Mostro node within %s", timeout), reason.Timeout)
	case <-ctx.Done():
		return Response{}, ctx.Err()
	}
}

func (r *Requester) forget(w *waiter) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ws := r.pending[w.id]
	for i, x := range ws {
		if x == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(r.pending, w.id)
	} else {
		r.pending[w.id] = ws
	}
}

// nodeInfo returns the cached info, fetching it once when nothing is
// cached; a node that publishes none is treated as v1 without PoW.
func (r *Requester) nodeInfo(ctx context.Context) (mostroinfo.Info, error) {
	if in, ok := r.o.Info.GetOrLoad(ctx); ok {
		return in, nil
	}
	evs := r.o.Pool.Query(ctx, nostr.Filter{Kinds: []int{mostro.KindInfo}, Authors: []string{r.o.Mostro}}, 3*time.Second)
	for _, e := range evs {
		if err := r.o.Info.Handle(ctx, "query", e); err != nil {
			r.o.Logger.Warn("could not store the mostro info", "error", err)
		}
	}
	if in, ok := r.o.Info.Get(); ok {
		return in, nil
	}
	r.o.Logger.Warn("the mostro node publishes no info event (kind 38385); speaking protocol v1 without proof of work")
	return mostroinfo.Info{Pubkey: r.o.Mostro, ProtocolVersion: 1}, nil
}

func summary(rs []pool.Result) string {
	var b strings.Builder
	for i, x := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(x.URL + "=" + x.Outcome.String())
		if x.Message != "" {
			b.WriteString(" (" + x.Message + ")")
		}
	}
	return b.String()
}

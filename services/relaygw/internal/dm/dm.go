// Package dm sends Serbero's NIP-17 direct messages with durable
// idempotency.
//
// A request is (idempotency key, recipient, body). The first call builds
// the gift wrap (pkg/mostro/dm), stores it (the signed event: ciphertext
// only) under the key, then publishes it. The insert is group-committed
// with the Sends in flight (one statement for all the wraps that arrived
// while the previous one was written) and the delivery mark is written
// later in a batch (see marks), so a Send costs a share of one database
// round trip. A later call with the same key
// never builds a second message: if the stored wrap was delivered (some
// relay accepted it), it returns duplicate without sending; otherwise (no
// relay accepted it, or the process died before publishing) it publishes
// the identical stored event again. The same key with another recipient or
// body is refused (an HMAC of both, keyed from Serbero's secret, is stored
// instead of the body). Bodies are never logged.
package dm

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/apperr"
	mdm "github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/services/relaygw/internal/identity"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// MaxKeyLen bounds an idempotency key.
const MaxKeyLen = reason.MaxKeyLen

var errBadRecipient = reason.With(apperr.InvalidArgument("recipient_pubkey is not a valid public key (want 64 hex characters or an npub naming a secp256k1 point)"), reason.InvalidRecipient)

// Sender sends DMs.
type Sender struct {
	id      *identity.Identity
	store   *store.Store
	pool    *pool.Pool
	log     *slog.Logger
	results *prometheus.CounterVec
	marks   *marks
	ins     *inserter
}

// Options configures a Sender.
type Options struct {
	Identity *identity.Identity
	Store    *store.Store
	Pool     *pool.Pool
	Logger   *slog.Logger
	// Registerer receives the Sender's metric (nil: none).
	Registerer prometheus.Registerer
	// Clock times the batched delivery marks (nil: the real clock).
	Clock clockwork.Clock
}

// New builds a Sender.
func New(o Options) (*Sender, error) {
	if o.Clock == nil {
		o.Clock = clockwork.NewRealClock()
	}
	st, log, reg := o.Store, o.Logger, o.Registerer
	s := &Sender{id: o.Identity, store: st, pool: o.Pool, log: log, marks: newMarks(st, log, o.Clock), ins: &inserter{store: st}, results: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "serbero_relaygw_dms_total",
		Help: "SendDirectMessage calls by result (delivered, undelivered, duplicate_delivered, republished_delivered, republished_undelivered).",
	}, []string{"result"})}
	if reg != nil {
		if err := reg.Register(s.results); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close writes the pending delivery marks and stops batching them (later
// sends write their marks at once).
func (s *Sender) Close() { s.marks.close() }

// Result is the outcome of one Send.
type Result struct {
	EventID   string
	Delivered bool
	Duplicate bool
	Results   []pool.Result
}

// Send sends body to recipient (hex or npub, a point on secp256k1) at most
// once per key. A recipient that is no such key is refused first.
func (s *Sender) Send(ctx context.Context, recipient, body, key string) (Result, error) {
	pk, err := nostrkey.Normalize(recipient)
	if err != nil {
		return Result{}, errBadRecipient
	}
	if err := reason.CheckKey(key); err != nil {
		return Result{}, err
	}
	if strings.TrimSpace(body) == "" {
		return Result{}, reason.With(apperr.InvalidArgument("body must not be empty"), reason.InvalidBody)
	}
	mac := s.id.Fingerprint("dm", pk, body)
	log := s.log.With("idempotency_key", key, "recipient", pk)

	// Common path first: build and insert. A key seen before loses the
	// insert and its stored wrap is used instead (the wrap built here is
	// discarded, never published).
	wrap, err := mdm.Wrap(s.id.Keys(), pk, body, mdm.Options{})
	if errors.Is(err, keys.ErrInvalidPubkey) { // Normalize checked the curve already; kept typed all the same
		return Result{}, errBadRecipient
	}
	if err != nil {
		return Result{}, err
	}
	inserted, err := s.ins.insert(ctx, store.DMRecord{Key: key, Recipient: pk, RequestMAC: mac, Event: wrap})
	if err != nil {
		return Result{}, err
	}
	if !inserted {
		rec, ok, err := s.store.GetDM(ctx, key)
		if err != nil || !ok {
			return Result{}, errStore(err)
		}
		return s.again(ctx, log, rec, pk, mac)
	}
	results := s.pool.Publish(ctx, wrap)
	delivered := pool.AnyAccepted(results)
	s.marks.add(key, delivered)
	s.results.WithLabelValues(label("", delivered)).Inc()
	log.Info("dm sent", "event_id", wrap.ID, "delivered", delivered, "relays", summary(results))
	return Result{EventID: wrap.ID, Delivered: delivered, Results: results}, nil
}

// again handles a key seen before: same request or refusal.
func (s *Sender) again(ctx context.Context, log *slog.Logger, rec store.DMRecord, pk, mac string) (Result, error) {
	if rec.Recipient != pk || rec.RequestMAC != mac {
		return Result{}, reason.With(apperr.InvalidArgument("idempotency_key was already used for a different recipient or body"), reason.IdempotencyConflict)
	}
	if rec.DeliveredAt != nil || s.marks.delivered(rec.Key) {
		s.results.WithLabelValues("duplicate_delivered").Inc()
		return Result{EventID: rec.Event.ID, Delivered: true, Duplicate: true}, nil
	}
	results := s.pool.Publish(ctx, rec.Event)
	delivered := pool.AnyAccepted(results)
	s.marks.add(rec.Key, delivered)
	s.results.WithLabelValues(label("republished_", delivered)).Inc()
	log.Info("dm republished", "event_id", rec.Event.ID, "delivered", delivered, "relays", summary(results))
	return Result{EventID: rec.Event.ID, Delivered: delivered, Duplicate: true, Results: results}, nil
}

// errStore is the failure of a database round trip: retryable, nothing
// was published.
func errStore(err error) error {
	return reason.With(apperr.Wrap(apperr.KindUnavailable, err, "database unavailable"), reason.StoreUnavailable)
}

func label(prefix string, delivered bool) string {
	if delivered {
		return prefix + "delivered"
	}
	return prefix + "undelivered"
}

// summary renders per-relay outcomes for a log line.
func summary(rs []pool.Result) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(r.URL + "=" + r.Outcome.String())
	}
	return b.String()
}

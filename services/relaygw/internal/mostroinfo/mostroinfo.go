// Package mostroinfo keeps the Mostro node's kind 38385 info event: the
// protocol version it speaks (protocol_version "1"/"2"; missing means 1)
// and the proof of work it demands (pow, pow_first_contact). The newest
// verified event is cached in memory and persisted, so a restart knows the
// node's parameters before any relay answers.
package mostroinfo

import (
	"context"
	"log/slog"
	"sync"

	"github.com/jonboulle/clockwork"
	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/services/relaygw/internal/notify"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/store"
	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// SubKey names the subscription.
const SubKey = "mostro-info"

// Info is the node's advertised parameters.
type Info = store.MostroInfo

// Parse reads an info event with pkg/mostro's ParseNodeInfo (a missing
// protocol_version means 1, other versions are kept as advertised; a
// missing pow_first_contact means pow).
func Parse(ev *nostr.Event) (Info, error) {
	ni, err := mostro.ParseNodeInfo(*ev)
	if err != nil {
		return Info{}, err
	}
	return Info{
		Pubkey: ev.PubKey, EventID: ev.ID, CreatedAt: int64(ev.CreatedAt), ProtocolVersion: ni.ProtocolVersion,
		PoW: ni.PoW, PoWFirstContact: ni.PoWFirstContact, MostroVersion: ni.MostroVersion, Event: *ev,
	}, nil
}

// Cache holds the node's info.
type Cache struct {
	mostro   string
	store    *store.Store
	log      *slog.Logger
	rejected *prometheus.CounterVec
	changed  *notify.Notifier
	clock    clockwork.Clock

	mu   sync.Mutex
	info *Info
}

// New builds the cache for the node mostroPubkey; clock stamps FetchedAt
// (nil: the real clock).
func New(mostroPubkey string, st *store.Store, log *slog.Logger, rejected *prometheus.CounterVec, clock clockwork.Clock) *Cache {
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	return &Cache{mostro: mostroPubkey, store: st, log: log, rejected: rejected, changed: notify.New(), clock: clock}
}

// Load reads the persisted info (at start), unless newer info was cached
// meanwhile.
func (c *Cache) Load(ctx context.Context) error {
	in, ok, err := c.store.GetMostroInfo(ctx, c.mostro)
	if err != nil || !ok {
		return err
	}
	c.mu.Lock()
	if c.info == nil {
		c.info = &in
	}
	c.mu.Unlock()
	return nil
}

// GetOrLoad is Get, reading the persisted info first when nothing is
// cached yet (a request may come before Run has loaded it).
func (c *Cache) GetOrLoad(ctx context.Context) (Info, bool) {
	if in, ok := c.Get(); ok {
		return in, true
	}
	if err := c.Load(ctx); err != nil {
		c.log.Debug("could not read the persisted mostro info", "error", err)
	}
	return c.Get()
}

// Get returns the cached info, ok false when none was ever received.
func (c *Cache) Get() (Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.info == nil {
		return Info{}, false
	}
	return *c.info, true
}

// Changed returns a channel closed when the info next changes.
func (c *Cache) Changed() <-chan struct{} { return c.changed.C() }

// Spec is the pool subscription (no cursor: the relay keeps only the
// newest revision of the addressable info event).
func (c *Cache) Spec() pool.Spec {
	return pool.Spec{
		Key: SubKey,
		Filters: func(context.Context, string) (nostr.Filters, error) {
			return nostr.Filters{{Kinds: []int{mostro.KindInfo}, Authors: []string{c.mostro}}}, nil
		},
		Handle: c.Handle,
	}
}

// Handle checks an info event and keeps it when newer.
func (c *Cache) Handle(ctx context.Context, relayURL string, ev *nostr.Event) error {
	reason := verify.Event(ev, mostro.KindInfo, c.mostro)
	if reason == verify.OK {
		reason = verify.Storable(ev)
	}
	if reason != verify.OK {
		c.rejected.WithLabelValues("mostro_info", string(reason)).Inc()
		c.log.Warn("refused a mostro info event delivered by a relay", "relay", relayURL, "event_id", ev.ID, "author", ev.PubKey, "reason", string(reason))
		return nil
	}
	in, err := Parse(ev)
	if err != nil {
		c.rejected.WithLabelValues("mostro_info", string(verify.Malformed)).Inc()
		c.log.Warn("refused a malformed mostro info event", "relay", relayURL, "event_id", ev.ID, "error", err)
		return nil
	}
	c.mu.Lock()
	cur := c.info
	newer := cur == nil || in.CreatedAt > cur.CreatedAt || (in.CreatedAt == cur.CreatedAt && in.EventID < cur.EventID)
	c.mu.Unlock()
	if !newer {
		return nil
	}
	if _, err := c.store.UpsertMostroInfo(ctx, in); err != nil {
		return err
	}
	in.FetchedAt = c.clock.Now()
	c.mu.Lock()
	if c.info == nil || in.CreatedAt > c.info.CreatedAt || (in.CreatedAt == c.info.CreatedAt && in.EventID <= c.info.EventID) {
		c.info = &in
	}
	c.mu.Unlock()
	c.changed.Notify()
	c.log.Info("mostro info updated", "event_id", in.EventID, "protocol_version", in.ProtocolVersion, "pow", in.PoW,
		"pow_first_contact", in.PoWFirstContact, "mostro_version", in.MostroVersion)
	return nil
}

// Package disputes ingests the Mostro node's kind 38386 dispute events and
// streams them to subscribers.
//
// Ingest: the subscription {kinds:[38386], authors:[mostro]} resumes from a
// durable per-relay cursor (pool.Cursored); each delivered event is checked
// (kind, author, id, signature: a relay may deliver anything) and stored
// once (event id unique) under a bigserial cursor. Refused events are
// logged and counted, never stored.
//
// Stream: replays the stored events after the subscriber's cursor, then
// follows new ones as they are stored; each stored event reaches a
// subscriber position exactly once and in cursor order.
package disputes

import (
	"context"
	"log/slog"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/services/relaygw/internal/notify"
	"github.com/serbero/serbero/services/relaygw/internal/pool"
	"github.com/serbero/serbero/services/relaygw/internal/store"
	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// SubKey names the subscription and its cursors.
const SubKey = "mostro-disputes"

// Ingest verifies and stores dispute events.
type Ingest struct {
	mostro   string
	store    *store.Store
	notifier *notify.Notifier
	log      *slog.Logger
	rejected *prometheus.CounterVec
	stored   prometheus.Counter
}

// New builds the ingest; rejected is the shared refused-events counter
// (labels stream, reason).
func New(mostroPubkey string, st *store.Store, log *slog.Logger, rejected *prometheus.CounterVec, reg prometheus.Registerer) (*Ingest, error) {
	i := &Ingest{
		mostro: mostroPubkey, store: st, notifier: notify.New(), log: log, rejected: rejected,
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serbero_relaygw_dispute_events_stored_total",
			Help: "Verified kind 38386 events stored (each event once).",
		}),
	}
	if reg != nil {
		if err := reg.Register(i.stored); err != nil {
			return nil, err
		}
	}
	return i, nil
}

// Spec is the pool subscription.
func (i *Ingest) Spec(cursors pool.Cursors, margin time.Duration) pool.Spec {
	return pool.Cursored(pool.CursoredOptions{
		Key: SubKey, Cursors: cursors, Margin: margin,
		Filters: func(since *nostr.Timestamp) nostr.Filters {
			return nostr.Filters{{Kinds: []int{mostro.KindDispute}, Authors: []string{i.mostro}, Since: since}}
		},
		Handle: i.Handle,
	})
}

// Handle checks a batch of delivered events and stores the good ones in one
// transaction; it returns the events that passed the checks (stored now or
// before). Refused events are logged and counted, never stored.
func (i *Ingest) Handle(ctx context.Context, relayURL string, evs []*nostr.Event) ([]*nostr.Event, error) {
	good := make([]*nostr.Event, 0, len(evs))
	for _, ev := range evs {
		reason := verify.Event(ev, mostro.KindDispute, i.mostro)
		if reason == verify.OK && ev.Tags.GetD() == "" {
			reason = verify.Malformed
		}
		if reason == verify.OK {
			reason = verify.Storable(ev)
		}
		if reason != verify.OK {
			i.rejected.WithLabelValues("disputes", string(reason)).Inc()
			i.log.Warn("refused a dispute event delivered by a relay", "relay", relayURL, "event_id", ev.ID, "author", ev.PubKey, "kind", ev.Kind, "reason", string(reason))
			continue
		}
		good = append(good, ev)
	}
	if len(good) == 0 {
		return nil, nil
	}
	stored, err := i.store.InsertDisputeEvents(ctx, good, relayURL)
	if err != nil {
		return nil, err
	}
	for _, st := range stored {
		i.stored.Inc()
		i.log.Info("dispute event stored", "event_id", st.EventID, "dispute_id", st.DisputeID, "cursor", st.Cursor, "relay", relayURL)
	}
	if len(stored) > 0 {
		i.notifier.Notify()
	}
	return good, nil
}

// pollEvery is the fallback re-read period of a waiting stream (another
// process may have appended; notifications are in-process only).
const pollEvery = 5 * time.Second

// batch is how many events a stream reads at once.
const batch = 256

// Stream calls send for every stored event after cursor `after`, in cursor
// order, then for every new one, until ctx ends (nil) or send fails. A
// database failure is retried, not returned: the stream survives a
// database restart.
func (i *Ingest) Stream(ctx context.Context, after int64, send func(store.DisputeEvent) error) error {
	pos := after
	backoff := 100 * time.Millisecond
	for {
		wake := i.notifier.C()
		evs, err := i.store.DisputeEventsAfter(ctx, pos, batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			i.log.Warn("dispute stream: reading the store failed; retrying", "error", err, "after_cursor", pos)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		for _, e := range evs {
			if err := send(e); err != nil {
				return err
			}
			pos = e.Cursor
		}
		if len(evs) == batch {
			continue
		}
		t := time.NewTimer(pollEvery)
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

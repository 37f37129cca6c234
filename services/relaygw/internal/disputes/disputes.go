// Package disputes ingests the Mostro node's kind 38386 dispute events and
// streams them to subscribers (docs/relaygw.md#dispute-events).
//
// Ingest: the subscription {kinds:[38386], authors:[mostro]} resumes from a
// durable per-relay cursor (pool.Cursored) and pages through the relay's
// stored events (relays cap their answers); each delivered event is checked
// (kind, author, id, signature: a relay may deliver anything) and stored
// once (event id unique) under a bigserial cursor. Refused events are
// logged and counted, never stored.
//
// First start: with no cursor stored anywhere, the deployment records when
// it started (relaygw_dispute_start) and reads from then minus the
// re-subscribe margin, or minus [relaygw].dispute_backfill_seconds when
// that is larger; it never replays the relays' whole history. Events
// created before that start are streamed with Backfill set. A relay added
// later starts from the oldest cursor of the others.
//
// Stream: replays the stored events after the subscriber's cursor, then
// follows new ones as they are stored; each stored event reaches a
// subscriber position exactly once and in cursor order.
package disputes

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
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

// Page is the REQ limit of the dispute subscription: the stored events are
// read backwards in pages of at most this many (relays may cap lower).
const Page = 500

// Options configures an Ingest.
type Options struct {
	// Mostro is the node's pubkey, hex.
	Mostro string
	// Store is relaygw's store.
	Store *store.Store
	// Logger receives the ingest's logs.
	Logger *slog.Logger
	// Rejected is the shared refused-events counter (labels stream,
	// reason).
	Rejected *prometheus.CounterVec
	// Registerer, if set, registers the ingest's metrics.
	Registerer prometheus.Registerer
	// Margin is [relaygw].resubscribe_margin_seconds.
	Margin time.Duration
	// Backfill is [relaygw].dispute_backfill_seconds: how far before the
	// first start to read (0: from the start, minus Margin).
	Backfill time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Ingest verifies and stores dispute events.
type Ingest struct {
	o        Options
	mostro   string
	store    *store.Store
	notifier *notify.Notifier
	log      *slog.Logger
	rejected *prometheus.CounterVec
	stored   prometheus.Counter
	// lastNew is when the last new event was stored (the start until
	// then): the silence alert's clock (docs/deploy.md#alerts).
	lastNew prometheus.Gauge

	mu     sync.Mutex
	start  *store.DisputeStart // once known
	logged bool                // which start happened was logged
}

// New builds the ingest.
func New(o Options) (*Ingest, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	i := &Ingest{
		o: o, mostro: o.Mostro, store: o.Store, notifier: notify.New(), log: o.Logger, rejected: o.Rejected,
		stored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serbero_relaygw_dispute_events_stored_total",
			Help: "Verified kind 38386 events stored (each event once).",
		}),
		lastNew: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serbero_relaygw_dispute_last_event_timestamp_seconds",
			Help: "Unix time relaygw last stored a new kind 38386 event of the Mostro node (from any relay; re-deliveries of stored events do not count); relaygw's start time until the first. time() minus it is how long the dispute stream has been silent.",
		}),
	}
	i.lastNew.Set(unixSeconds(o.Now()))
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{i.stored, i.lastNew} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return i, nil
}

// Spec is the pool subscription.
func (i *Ingest) Spec(cursors pool.Cursors) pool.Spec {
	spec := pool.Cursored(pool.CursoredOptions{
		Key: SubKey, Cursors: cursors, Margin: i.o.Margin, Page: Page, Now: i.o.Now,
		Initial: i.initial,
		Filters: func(since *nostr.Timestamp) nostr.Filters {
			return nostr.Filters{{Kinds: []int{mostro.KindDispute}, Authors: []string{i.mostro}, Since: since}}
		},
		Handle: i.Handle,
	})
	// The start record is known (and which start this is logged) before
	// the first REQ, cursor or not.
	filters := spec.Filters
	spec.Filters = func(ctx context.Context, relayURL string) (nostr.Filters, error) {
		if _, err := i.ensureStart(ctx); err != nil {
			return nil, err
		}
		return filters(ctx, relayURL)
	}
	return spec
}

// initial is where a relay without a cursor starts: at the oldest cursor
// of the other relays (a relay added later), else at the deployment's
// first start minus the margin or the backfill window.
func (i *Ingest) initial(ctx context.Context, relayURL string) (*nostr.Timestamp, error) {
	st, err := i.ensureStart(ctx)
	if err != nil {
		return nil, err
	}
	margin := int64(i.o.Margin / time.Second)
	if ts, ok, err := i.store.OldestCursor(ctx, SubKey); err != nil {
		return nil, err
	} else if ok {
		since := nostr.Timestamp(max(ts-margin, 0))
		i.log.Info("dispute subscription: a relay without a cursor starts where the others are", "relay", relayURL, "since", int64(since))
		return &since, nil
	}
	from := st.StartedAt
	if from == 0 {
		from = i.o.Now().Unix()
	}
	// (Not from the newest stored event: with no cursor, the window that
	// stored it may not have been read to its end.)
	since := max(from-max(margin, st.BackfillSeconds), 0)
	s := nostr.Timestamp(since)
	return &s, nil
}

// ensureStart loads the deployment's start record, writing it on the
// first start, and logs once which start this is.
func (i *Ingest) ensureStart(ctx context.Context) (store.DisputeStart, error) {
	i.mu.Lock()
	if i.start != nil && i.logged {
		st := *i.start
		i.mu.Unlock()
		return st, nil
	}
	i.mu.Unlock()
	st, ok, err := i.store.GetDisputeStart(ctx)
	if err != nil {
		return store.DisputeStart{}, err
	}
	_, hasCursor, err := i.store.OldestCursor(ctx, SubKey)
	if err != nil {
		return store.DisputeStart{}, err
	}
	created := false
	if !ok {
		want := store.DisputeStart{StartedAt: i.o.Now().Unix(), BackfillSeconds: int64(i.o.Backfill / time.Second)}
		if hasCursor {
			want = store.DisputeStart{} // cursors from before the record: nothing is backfill
		}
		if st, created, err = i.store.RecordDisputeStart(ctx, want); err != nil {
			return store.DisputeStart{}, err
		}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	i.start = &st
	if !i.logged {
		i.logged = true
		i.logStart(st, created, hasCursor)
	}
	return st, nil
}

func (i *Ingest) logStart(st store.DisputeStart, created, hasCursor bool) {
	margin := int64(i.o.Margin / time.Second)
	switch {
	case hasCursor:
		i.log.Info("dispute subscription: resuming from the stored cursors", "margin_seconds", margin)
	case created && st.BackfillSeconds > margin:
		i.log.Info("dispute subscription: first start with a backfill window: reading dispute events from before the start; they are streamed marked backfill",
			"started_at", st.StartedAt, "backfill_seconds", st.BackfillSeconds, "since", st.StartedAt-st.BackfillSeconds)
	case created:
		i.log.Info("dispute subscription: first start: reading dispute events from now (minus the margin), not the relays' history ([relaygw].dispute_backfill_seconds is 0)",
			"started_at", st.StartedAt, "margin_seconds", margin)
	default:
		i.log.Info("dispute subscription: no cursor stored yet: resuming the first start",
			"started_at", st.StartedAt, "backfill_seconds", st.BackfillSeconds, "since", st.StartedAt-max(margin, st.BackfillSeconds))
	}
}

// startRecord returns the start record if known (loading it when not
// cached yet). ok is false when none was ever recorded (events stored before
// first starts were recorded: none is backfill); err is a failed read.
func (i *Ingest) startRecord(ctx context.Context) (_ store.DisputeStart, ok bool, _ error) {
	i.mu.Lock()
	if i.start != nil {
		st := *i.start
		i.mu.Unlock()
		return st, true, nil
	}
	i.mu.Unlock()
	st, ok, err := i.store.GetDisputeStart(ctx)
	if err != nil {
		return store.DisputeStart{}, false, fmt.Errorf("read the dispute subscription's start: %w", err)
	}
	if !ok {
		return store.DisputeStart{}, false, nil
	}
	i.mu.Lock()
	if i.start == nil {
		i.start = &st
	}
	i.mu.Unlock()
	return st, true, nil
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
		i.lastNew.Set(unixSeconds(i.o.Now()))
		i.notifier.Notify()
	}
	return good, nil
}

// unixSeconds is t as fractional Unix seconds.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// Event is one stored dispute event as streamed.
type Event struct {
	store.DisputeEvent
	// Backfill: the event was created before the deployment's first start
	// (read by its margin or backfill window, or from a relay holding
	// history).
	Backfill bool
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
func (i *Ingest) Stream(ctx context.Context, after int64, send func(Event) error) error {
	pos := after
	backoff := 100 * time.Millisecond
	for {
		wake := i.notifier.C()
		evs, err := i.store.DisputeEventsAfter(ctx, pos, batch)
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // the stream ends with ctx (nil, as documented); a read it cut short is no failure
			}
			i.log.Warn("dispute stream: reading the store failed; retrying", "error", err, "after_cursor", pos)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		var st store.DisputeStart
		if len(evs) > 0 {
			// Which events are backfill depends on the start record: never
			// guess (false would notify solvers about history).
			if st, _, err = i.startRecord(ctx); err != nil {
				if ctx.Err() != nil {
					return nil //nolint:nilerr // the stream ends with ctx (nil, as documented)
				}
				i.log.Warn("dispute stream: reading the start record failed; retrying", "error", err, "after_cursor", pos)
				if !sleep(ctx, backoff) {
					return nil
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
		}
		backoff = 100 * time.Millisecond
		for _, e := range evs {
			if err := send(Event{DisputeEvent: e, Backfill: int64(e.Event.CreatedAt) < st.StartedAt}); err != nil {
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

package pool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

var errKicked = errors.New("re-subscribe requested")

// runSub keeps one subscription open on one connection: subscribe, handle
// events; after a relay CLOSED, an overflow, a handler error or a filter
// error, wait a backoff and subscribe again from freshly built filters.
func (c *conn) runSub(ctx context.Context, r *relayconn.Conn, key string, sr *subRunner) {
	log := c.pool.log.With("relay", c.url, "subscription", key)
	backoff := c.pool.opts.InitialBackoff
	for ctx.Err() == nil {
		spec, ok := c.pool.spec(key)
		if !ok {
			return
		}
		err := c.subscribeOnce(ctx, r, spec, sr.kick)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errKicked) {
			backoff = c.pool.opts.InitialBackoff
			continue
		}
		if err != nil {
			c.noteError(fmt.Errorf("subscription %s: %w", key, err))
			log.Warn("subscription ended; re-subscribing", "error", err, "backoff", backoff.String())
		}
		select {
		case <-ctx.Done():
			return
		case <-sr.kick:
		case <-time.After(jitter(backoff)):
		}
		backoff = min(2*backoff, c.pool.opts.MaxBackoff)
	}
}

// subscribeOnce runs one REQ of spec until it ends: the stored events
// (page by page when spec.Page is set), the EndOfStored call, then live
// events.
func (c *conn) subscribeOnce(ctx context.Context, r *relayconn.Conn, spec Spec, kick <-chan struct{}) error {
	filters, err := spec.Filters(ctx, c.url)
	if err != nil {
		return fmt.Errorf("build filters: %w", err)
	}
	if len(filters) == 0 { // nothing to watch yet
		select {
		case <-kick:
			return errKicked
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	var pg *pager
	if spec.Page > 0 {
		if len(filters) != 1 {
			return fmt.Errorf("a paged subscription needs exactly one filter, got %d", len(filters))
		}
		pg = newPager(filters[0], spec.Page)
		filters = nostr.Filters{pg.first()}
	}
	live, err := r.Subscribe(ctx, filters, spec.Key)
	if err != nil {
		return err
	}
	defer live.Close()
	var page *relayconn.Subscription // the backwards page being read
	defer func() {
		if page != nil {
			page.Close()
		}
	}()
	stored := false // the live REQ's EOSE came
	log := c.pool.log.With("relay", c.url, "subscription", spec.Key)
	// endOfPage: the stored answer of the live REQ or of a page is in;
	// ask for the next page, or the window is covered.
	endOfPage := func() error {
		if pg != nil {
			next, ok := pg.next()
			if pg.skipped {
				pg.skipped = false
				if m := c.pool.opts.Metrics; m != nil {
					m.pageSkips.WithLabelValues(c.url).Inc()
				}
				log.Warn("a full page of stored events shares one second: events of that second beyond the relay's cap cannot be read", "created_at", int64(*next.Until)+1)
			}
			if ok {
				if m := c.pool.opts.Metrics; m != nil {
					m.pages.WithLabelValues(c.url).Inc()
				}
				p, err := r.Subscribe(ctx, nostr.Filters{next}, spec.Key+"/page")
				if err != nil {
					return err
				}
				page = p
				return nil
			}
			if pg.truncated {
				log.Error("stopped paging: the relay holds more stored events in the window than relaygw reads at once", "pages", maxPages)
			}
		}
		if spec.EndOfStored != nil {
			if err := spec.EndOfStored(ctx, c.url); err != nil {
				return fmt.Errorf("end of stored events: %w", err)
			}
		}
		return nil
	}
	for {
		var pageWake <-chan struct{}
		if page != nil {
			pageWake = page.Wake()
		}
		select {
		case <-live.Wake():
			items, err := live.Take(maxBatch)
			if len(items) == 0 {
				if err != nil {
					return describe(err)
				}
				continue
			}
			evs, eose := split(items)
			if pg != nil && !stored {
				pg.add(evs)
			}
			if err := c.handle(ctx, spec, evs); err != nil {
				return err
			}
			if eose && !stored {
				stored = true
				if err := endOfPage(); err != nil {
					return err
				}
			}
		case <-pageWake:
			items, err := page.Take(maxBatch)
			if len(items) == 0 {
				if err != nil {
					return fmt.Errorf("page: %w", describe(err))
				}
				continue
			}
			evs, eose := split(items)
			pg.add(evs)
			if err := c.handle(ctx, spec, evs); err != nil {
				return err
			}
			if eose {
				page.Close()
				page = nil
				if err := endOfPage(); err != nil {
					return err
				}
			}
		case <-kick:
			return errKicked
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// describe words why a subscription ended.
func describe(err error) error {
	var ce *relayconn.ClosedError
	if errors.As(err, &ce) {
		return fmt.Errorf("closed by relay: %s", truncate(ce.Reason, 200))
	}
	return err
}

// split separates a Take's events from its EOSE mark (always last).
func split(items []relayconn.Item) (evs []*nostr.Event, eose bool) {
	evs = make([]*nostr.Event, 0, len(items))
	for _, it := range items {
		if it.EOSE {
			eose = true
			continue
		}
		evs = append(evs, it.Event)
	}
	return evs, eose
}

// handle passes the not-yet-seen events of a batch to the spec's handler
// and marks them seen once handled.
func (c *conn) handle(ctx context.Context, spec Spec, batch []*nostr.Event) error {
	if len(batch) == 0 {
		return nil
	}
	now := time.Now()
	c.mu.Lock()
	c.lastEventAt = now
	c.mu.Unlock()
	if m := c.pool.opts.Metrics; m != nil {
		m.events.WithLabelValues(c.url).Add(float64(len(batch)))
		m.lastEvent.WithLabelValues(c.url).Set(float64(now.Unix()))
	}
	fresh := batch
	if !spec.NoDedup {
		fresh = batch[:0:0]
		for _, ev := range batch {
			if !c.pool.seen.has(spec.Key, ev.ID) {
				fresh = append(fresh, ev)
			}
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if spec.HandleBatch != nil {
		if err := spec.HandleBatch(ctx, c.url, fresh); err != nil {
			return fmt.Errorf("handle %d events from %s: %w", len(fresh), fresh[0].ID, err)
		}
		if !spec.NoDedup {
			for _, ev := range fresh {
				c.pool.seen.add(spec.Key, ev.ID)
			}
		}
		return nil
	}
	for _, ev := range fresh {
		if err := spec.Handle(ctx, c.url, ev); err != nil {
			return fmt.Errorf("handle event %s: %w", ev.ID, err)
		}
		if !spec.NoDedup {
			c.pool.seen.add(spec.Key, ev.ID)
		}
	}
	return nil
}

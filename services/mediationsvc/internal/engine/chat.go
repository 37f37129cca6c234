package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/retry"
	"github.com/serbero/serbero/services/mediationsvc/internal/session"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// bucketSize is how many sessions share one chat stream: few streams for
// many sessions, and a new session re-registers at most this many
// sessions' channels when its bucket's stream restarts.
const bucketSize = 64

// chatFollower keeps relaygw chat streams open for the sessions this
// replica holds, in buckets of bucketSize sessions, and routes each line
// to its session's worker.
type chatFollower struct {
	e   *Engine
	max atomic.Int64 // highest stream position seen

	mu      sync.Mutex
	ctx     context.Context
	buckets []*chatBucket
	of      map[*worker]*chatBucket
}

type chatBucket struct {
	f       *chatFollower
	members map[*worker]struct{}
	restart chan struct{}
}

func newChatFollower(e *Engine) *chatFollower {
	return &chatFollower{e: e, of: map[*worker]*chatBucket{}, ctx: context.Background()}
}

// position is the highest stream position seen: a new session starts
// there (its channels had no lines before they were registered).
func (f *chatFollower) position() int64 { return f.max.Load() }

func (f *chatFollower) setContext(ctx context.Context) {
	f.mu.Lock()
	f.ctx = ctx
	f.mu.Unlock()
}

// add puts a worker's parties in a bucket and restarts that bucket's
// stream, so relaygw registers (and fetches) the new channels.
func (f *chatFollower) add(w *worker) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b *chatBucket
	for _, c := range f.buckets {
		if len(c.members) < bucketSize {
			b = c
			break
		}
	}
	if b == nil {
		b = &chatBucket{f: f, members: map[*worker]struct{}{}, restart: make(chan struct{}, 1)}
		f.buckets = append(f.buckets, b)
		go b.run(f.ctx)
	}
	b.members[w] = struct{}{}
	f.of[w] = b
	b.signal()
}

// remove takes a finished worker out (its bucket's stream keeps its
// channels until the next restart; their lines are dropped).
func (f *chatFollower) remove(w *worker) {
	f.mu.Lock()
	defer f.mu.Unlock()
	b := f.of[w]
	if b == nil {
		return
	}
	delete(f.of, w)
	delete(b.members, w)
	if len(b.members) == 0 {
		b.signal()
	}
}

// resync restarts the stream of a worker's bucket from the lowest
// position of its sessions (after an ingest failed).
func (f *chatFollower) resync(w *worker) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.of[w]; b != nil {
		b.signal()
	}
}

func (b *chatBucket) signal() {
	select {
	case b.restart <- struct{}{}:
	default:
	}
}

// snapshot returns the bucket's parties and where its stream starts; ok
// false when the bucket is empty (it is then removed).
func (b *chatBucket) snapshot() (parties []string, after int64, ok bool) {
	f := b.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(b.members) == 0 {
		for i, c := range f.buckets {
			if c == b {
				f.buckets = append(f.buckets[:i], f.buckets[i+1:]...)
				break
			}
		}
		return nil, 0, false
	}
	after = -1
	for w := range b.members {
		parties = append(parties, w.buyer, w.seller)
		if c := w.cursor.Load(); after < 0 || c < after {
			after = c
		}
	}
	return parties, after, true
}

func (b *chatBucket) run(ctx context.Context) {
	e := b.f.e
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		parties, after, ok := b.snapshot()
		if !ok {
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { errc <- b.follow(sctx, parties, after) }()
		select {
		case <-ctx.Done():
			cancel()
			e.log.Debug("chat stream stopped", "error", <-errc)
			return
		case <-b.restart:
			cancel()
			e.log.Debug("chat stream restarting for a change of sessions", "error", <-errc)
		case err := <-errc:
			cancel()
			if ctx.Err() != nil {
				return
			}
			e.log.Warn("chat stream ended; reopening", "error", err, "retry_in", backoff.String())
			if !retry.Sleep(ctx, e.o.Clock, backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}
}

// follow streams the parties' lines after `after` and routes each to its
// worker until the stream ends.
func (b *chatBucket) follow(ctx context.Context, parties []string, after int64) error {
	e := b.f.e
	stream, err := e.o.Relaygw.StreamChatMessages(ctx, &relaygwv1.StreamChatMessagesRequest{PartyTradePubkeys: parties, AfterCursor: after})
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		m := resp.GetMessage()
		for {
			cur := b.f.max.Load()
			if m.GetCursor() <= cur || b.f.max.CompareAndSwap(cur, m.GetCursor()) {
				break
			}
		}
		e.mu.Lock()
		w := e.byParty[m.GetPartyTradePubkey()]
		e.mu.Unlock()
		if w == nil || m.GetCursor() <= w.cursor.Load() {
			continue
		}
		w.deliver(ctx, m)
	}
}

// ingest stores a batch of lines (each in its own fenced transaction),
// escalates round_limit when a fresh line reaches it, and otherwise
// leaves the evaluation to the next step (one evaluation per batch, so a
// batch holding both parties' replies costs one reasoning call).
func (w *worker) ingest(ctx context.Context, batch []*relaygwv1.ChatMessage) error {
	e := w.e
	for _, m := range batch {
		if m.GetCursor() <= w.cursor.Load() {
			continue
		}
		party, shared := session.Buyer, w.sess.BuyerShared
		if m.GetPartyTradePubkey() == w.seller {
			party, shared = session.Seller, w.sess.SellerShared
		}
		var (
			res       store.IngestResult
			rounds    int64
			limitHit  bool
			wasLive   = true
			innerTime = m.GetInnerCreatedAt().AsTime().Unix()
		)
		err := w.inTx(ctx, func(tx pgx.Tx, sess store.EngineSession) error {
			if !session.State(sess.State).Live() {
				wasLive = false
				return nil
			}
			var err error
			res, rounds, err = e.o.Store.Ingest(ctx, tx, sess, store.Inbound{
				SessionID: w.id, Party: string(party), SharedPubkey: shared, InnerEventID: m.GetInnerEventId(),
				OuterEventID: m.GetOuterEventId(), Content: m.GetContent(), InnerCreatedAt: innerTime,
				PersistedAt: e.now(), Cursor: m.GetCursor(),
			})
			if err != nil {
				return err
			}
			if res == store.IngestFresh && session.RoundLimitReached(rounds, e.o.MaxRounds) {
				limitHit = true
			}
			return nil
		})
		if err != nil {
			return err
		}
		w.cursor.Store(m.GetCursor())
		if !wasLive {
			w.ended = true
			return nil
		}
		e.o.Metrics.inbound.WithLabelValues(ingestLabel(res)).Inc()
		e.log.Debug("inbound_ingested", "session_id", w.id, "party", string(party), "inner_event_id", m.GetInnerEventId(),
			"result", ingestLabel(res), "round_count", rounds)
		if limitHit {
			w.escalateSession(ctx, escalation{trigger: "round_limit", evidenceRefs: []string{m.GetInnerEventId()}})
			return nil
		}
	}
	return nil
}

func ingestLabel(r store.IngestResult) string {
	switch r {
	case store.IngestFresh:
		return "fresh"
	case store.IngestStale:
		return "stale"
	case store.IngestDuplicate:
		return "duplicate"
	}
	return "unknown"
}

var errNotSent = errors.New("no relay accepted the chat line")

package dm

import (
	"context"
	"sync"
	"time"

	"github.com/serbero/serbero/services/relaygw/internal/store"
)

// maxInsertBatch bounds how many gift wraps one statement stores.
const maxInsertBatch = 256

// insertTimeout bounds one batch insert (it serves several callers, so no
// single caller's context governs it).
const insertTimeout = 10 * time.Second

// inserter stores gift wraps before they are published, group-committing
// concurrent Sends: while one batch is being written, the wraps that arrive
// wait and go together in the next statement (no added delay when idle,
// one statement per batch instead of one per DM under load). A writer
// goroutine runs only while there is work.
type inserter struct {
	store *store.Store

	mu      sync.Mutex
	queue   []*insertReq
	running bool
}

type insertReq struct {
	rec      store.DMRecord
	inserted bool
	err      error
	done     chan struct{}
}

// insert stores rec unless its key has a record (inserted false). A
// caller whose ctx ends stops waiting; its wrap may still be stored, which
// is harmless: it was never published, and a retry with the key
// publishes that stored wrap.
func (in *inserter) insert(ctx context.Context, rec store.DMRecord) (bool, error) {
	req := &insertReq{rec: rec, done: make(chan struct{})}
	in.mu.Lock()
	in.queue = append(in.queue, req)
	if !in.running {
		in.running = true
		go in.run()
	}
	in.mu.Unlock()
	select {
	case <-req.done:
		return req.inserted, req.err
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

func (in *inserter) run() {
	for {
		in.mu.Lock()
		batch := in.queue
		if len(batch) > maxInsertBatch {
			batch = batch[:maxInsertBatch]
		}
		in.queue = in.queue[len(batch):]
		if len(batch) == 0 {
			in.queue = nil
			in.running = false
			in.mu.Unlock()
			return
		}
		in.mu.Unlock()
		recs := make([]store.DMRecord, len(batch))
		for i, r := range batch {
			recs[i] = r.rec
		}
		ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
		inserted, err := in.store.InsertDMs(ctx, recs)
		cancel()
		for i, r := range batch {
			if err != nil {
				r.err = err
			} else {
				r.inserted = inserted[i]
			}
			close(r.done)
		}
	}
}

package dm

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/serbero/serbero/pkg/apperr"
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
		in.write(batch)
	}
}

// write stores one batch in one statement. When Postgres refuses the
// statement for its data (a constraint, a value it cannot hold), one record
// may be at fault: each record is
// then stored on its own, so only the bad one fails and the others go on.
// Any other failure (connection, timeout) fails the whole batch as
// retryable.
func (in *inserter) write(batch []*insertReq) {
	recs := make([]store.DMRecord, len(batch))
	for i, r := range batch {
		recs[i] = r.rec
	}
	ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
	inserted, err := in.store.InsertDMs(ctx, recs)
	cancel()
	if err == nil {
		for i, r := range batch {
			r.inserted = inserted[i]
			close(r.done)
		}
		return
	}
	if !refused(err) || len(batch) == 1 {
		for _, r := range batch {
			r.err = classify(err)
			close(r.done)
		}
		return
	}
	for _, r := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), insertTimeout)
		one, err := in.store.InsertDMs(ctx, []store.DMRecord{r.rec})
		cancel()
		if err != nil {
			r.err = classify(err)
		} else {
			r.inserted = one[0]
		}
		close(r.done)
	}
}

// refused reports whether Postgres refused the statement for the data in
// it (a data exception, a constraint, a value past a limit: SQLSTATE
// classes 22, 23 and 54), as opposed to not answering or not accepting the
// connection (which are about the database, not the data).
func refused(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || len(pgErr.Code) != 5 {
		return false
	}
	switch pgErr.Code[:2] {
	case "22", "23", "54":
		return true
	}
	return false
}

// classify turns an insert failure into the Send error: a record Postgres
// refuses fails the same way on every retry (Internal, not retryable
// Unavailable); anything else is the database being unreachable.
func classify(err error) error {
	if refused(err) {
		return apperr.Wrap(apperr.KindInternal, err, "the DM could not be recorded")
	}
	return errStore(err)
}

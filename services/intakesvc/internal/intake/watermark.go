package intake

import (
	"context"
	"sync"
	"time"

	"github.com/serbero/serbero/pkg/retry"
)

// cursorEvery is the least time between two writes of the intake cursor:
// under load the watermark moves with every event, and a restart replaying
// the last fraction of a second re-applies events harmlessly (duplicates).
const cursorEvery = 50 * time.Millisecond

// persistWatermark writes the applied low watermark to intake_cursor as it
// moves (coalescing: at most once per cursorEvery), and a last time when
// stopping.
func (in *Intake) persistWatermark(ctx context.Context, wm *watermark, persisted int64) {
	write := func(c context.Context) {
		if mark := wm.mark(); mark > persisted {
			if err := in.st.AdvanceCursor(c, mark); err != nil {
				if c.Err() == nil {
					in.log.Warn("persist intake cursor failed; retrying", "cursor", mark, "error", err)
				}
				return
			}
			persisted = mark
			in.m.Cursor.Set(float64(mark))
		}
	}
	final := func() {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		write(fctx)
		cancel()
	}
	var last time.Time
	for {
		select {
		case <-ctx.Done():
			final()
			return
		case <-wm.changed:
		case <-in.clock.After(time.Second): // retry after a failure
		}
		if d := cursorEvery - in.clock.Since(last); d > 0 && !retry.Sleep(ctx, in.clock, d) {
			final()
			return
		}
		last = in.clock.Now()
		write(ctx)
	}
}

// watermark tracks received events in stream order and yields the highest
// cursor below which every event is applied (or set aside for good).
type watermark struct {
	mu       sync.Mutex
	low      int64
	inflight []int64 // cursors received and not yet below low, in order
	finished map[int64]bool
	changed  chan struct{}
}

func newWatermark(low int64) *watermark {
	return &watermark{low: low, finished: map[int64]bool{}, changed: make(chan struct{}, 1)}
}

// add records a received event (cursors arrive increasing).
func (w *watermark) add(c int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.inflight = append(w.inflight, c)
}

// done records an applied (rejected, or quarantined) event.
func (w *watermark) done(c int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.finished[c] = true
	moved := false
	for len(w.inflight) > 0 && w.finished[w.inflight[0]] {
		w.low = w.inflight[0]
		delete(w.finished, w.low)
		w.inflight = w.inflight[1:]
		moved = true
	}
	if moved {
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

func (w *watermark) mark() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.low
}

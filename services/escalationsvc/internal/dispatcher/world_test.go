package dispatcher

import (
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// world is where DMs go: a real relaygw (relaygwtest: its own gRPC server
// on the test's database, an in-process relay) with fake solvers reading
// their gift wraps from that relay, or an in-memory relaygw (fast, and
// able to inject faults).
type world interface {
	// sender is what the dispatcher sends through.
	sender() Sender
	// solver returns a new solver (a fresh valid key) whose DMs can be read.
	solver() inbox
}

// inbox is one solver's received DMs.
type inbox interface {
	Pubkey() string
	// Expect waits until n DMs have arrived, checks that no more arrive,
	// and returns their bodies.
	Expect(t testing.TB, n int) []string
}

// worlds lists the worlds every phase 4 scenario runs in.
func worlds() map[string]func(t *testing.T, e *env) world {
	return map[string]func(t *testing.T, e *env) world{
		"relaygw": newRelaygwWorld,
		"mem":     func(*testing.T, *env) world { return newMemWorld() },
	}
}

type relaygwWorld struct {
	t *testing.T
	h *relaygwtest.Harness
}

// newRelaygwWorld starts a real relaygw sharing the test's database.
func newRelaygwWorld(t *testing.T, e *env) world {
	h := relaygwtest.Start(t, relaygwtest.Options{
		DB:     e.db,
		Logger: slog.New(slog.DiscardHandler),
	})
	return &relaygwWorld{t: t, h: h}
}

func (w *relaygwWorld) sender() Sender { return w.h.Client }

func (w *relaygwWorld) solver() inbox {
	return relaygwInbox{fakesolver.Start(w.t, w.h.Relay.URL())}
}

type relaygwInbox struct{ s *fakesolver.Solver }

func (i relaygwInbox) Pubkey() string { return i.s.Pubkey() }

// noMoreWindow is how long Expect watches for an unexpected extra DM.
const noMoreWindow = 300 * time.Millisecond

func (i relaygwInbox) Expect(t testing.TB, n int) []string {
	t.Helper()
	msgs := i.s.WaitFor(n, 20*time.Second)
	i.s.AssertNoMessagesBeyond(n, noMoreWindow)
	out := make([]string, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, m.Body)
	}
	require.Len(t, out, n)
	return out
}

type memWorld struct {
	s    *memSender
	next int
}

func newMemWorld() *memWorld { return &memWorld{s: newMemSender()} }

func (w *memWorld) sender() Sender { return w.s }

func (w *memWorld) solver() inbox {
	w.next++
	return memInbox{s: w.s, pk: key(w.next)}
}

type memInbox struct {
	s  *memSender
	pk string
}

func (i memInbox) Pubkey() string { return i.pk }

// Expect is exact at once: memSender delivers synchronously.
func (i memInbox) Expect(t testing.TB, n int) []string {
	t.Helper()
	got := i.s.Bodies(i.pk)
	require.Len(t, got, n, "DMs to %s", i.pk[:8])
	return got
}

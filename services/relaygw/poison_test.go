package relaygw_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/testkit/fakeparty"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

// An event signed by the node that Postgres cannot store as text (a NUL
// byte in a tag or the content) must not stall the dispute stream.
func TestNulBytesDoNotStallTheDisputeStream(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	col, _ := streamDisputes(t, h, 0)
	now := nostr.Now()

	badTag := disputeEvent("bad\x00id", "initiated", now)
	h.PublishAsMostro(t, badTag)
	badContent := disputeEvent(uuid.NewString(), "initiated", now)
	badContent.Content = "x\x00y"
	h.PublishAsMostro(t, badContent)

	good := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now))
	require.Equal(t, good.ID, col.next(t).GetEventId(), "the good event streams; the bad ones are refused, not stored")
	// go-nostr hands each event over in its own goroutine: the refusals may
	// be counted just after the good event is stored.
	require.Eventually(t, func() bool {
		return h.Metric(t, "serbero_relaygw_events_rejected_total", "reason", "unstorable_text") == 2
	}, wait, 10*time.Millisecond)
	col.none(t, 200*time.Millisecond)
}

// A party's chat line Postgres cannot store (a NUL byte) is refused; the
// lines after it, on every channel, still arrive.
func TestNulByteChatLineDoesNotStallChat(t *testing.T) {
	t.Parallel()
	h := relaygwtest.Start(t, relaygwtest.Options{})
	buyer := fakeparty.New(t, h.Relay.URL())
	ch := buyer.SetSolver(h.Serbero.PublicKey())
	s, _ := streamChat(t, h, 0, buyer.Pubkey())
	waitChatSubscribed(t, h, ch)

	buyer.Send(chat.FormV2, "nul\x00byte")
	buyer.Send(chat.FormV1, "nul\x00byte, legacy form")
	_, after := buyer.Send(chat.FormV2, "after the bad ones")
	got := s.next(t)
	require.Equal(t, after.ID, got.GetInnerEventId())
	require.Eventually(t, func() bool { return rejected(t, h, "unstorable_text") == 2 }, wait, 10*time.Millisecond)
	s.none(t, 200*time.Millisecond)
}

// A signed dispute event past relaygw's size bounds (here a 4,000-character
// d tag, which no B-tree index downstream can hold) is refused with a
// clear reason, counted, and never stored or streamed; the stream goes on.
func TestOversizedDisputeEventsAreRefused(t *testing.T) {
	t.Parallel()
	var logs logtest
	h := relaygwtest.Start(t, relaygwtest.Options{Logger: logs.logger()})
	col, _ := streamDisputes(t, h, 0)
	now := nostr.Now()

	longD := h.PublishAsMostro(t, disputeEvent(strings.Repeat("d", 4000), "initiated", now))
	manyTags := disputeEvent(uuid.NewString(), "initiated", now)
	for range 200 {
		manyTags.Tags = append(manyTags.Tags, nostr.Tag{"t", "x"})
	}
	h.PublishAsMostro(t, manyTags)
	good := h.PublishAsMostro(t, disputeEvent(uuid.NewString(), "initiated", now))

	require.Equal(t, good.ID, col.next(t).GetEventId(), "only the good event streams")
	require.Eventually(t, func() bool {
		return h.Metric(t, "serbero_relaygw_events_rejected_total", "stream", "disputes", "reason", "oversized_d_tag") == 1 &&
			h.Metric(t, "serbero_relaygw_events_rejected_total", "stream", "disputes", "reason", "too_many_tags") == 1
	}, wait, 10*time.Millisecond)
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "event_id="+longD.ID) && strings.Contains(logs.String(), "reason=oversized_d_tag")
	}, wait, 10*time.Millisecond, "the refusal is logged with the event id and reason")
	col.none(t, 200*time.Millisecond)
}

// logtest is a concurrency-safe log buffer (to be replaced by
// pkg/logging/logtest once it exists).
type logtest struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logtest) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logtest) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func (l *logtest) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

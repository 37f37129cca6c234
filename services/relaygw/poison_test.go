package relaygw_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

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
	require.Equal(t, 2.0, h.Metric(t, "serbero_relaygw_events_rejected_total", "reason", "unstorable_text"))
	col.none(t, 200*time.Millisecond)
}

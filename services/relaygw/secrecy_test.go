package relaygw_test

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr/nip19"
	"github.com/prometheus/common/expfmt"
	"github.com/stretchr/testify/require"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/testkit/fakeparty"
	"github.com/serbero/serbero/pkg/testkit/fakesolver"
	"github.com/serbero/serbero/services/relaygw/relaygwtest"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Neither Serbero's secret key nor DM bodies nor chat text (either way)
// appear in relaygw's logs (at debug level) or metrics.
func TestSecretsAndPlaintextStayOutOfLogsAndMetrics(t *testing.T) {
	t.Parallel()
	var logs lockedBuffer
	h := relaygwtest.Start(t, relaygwtest.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	solver := fakesolver.Start(t, h.Relay.URL())
	party := fakeparty.New(t, h.Relay.URL())
	ch := party.SetSolver(h.Serbero.PublicKey())
	s, _ := streamChat(t, h, 0, party.Pubkey())
	waitChatSubscribed(t, h, ch)

	_, err := h.Client.SendDirectMessage(ctx(t), &relaygwv1.SendDirectMessageRequest{RecipientPubkey: solver.Pubkey(), Body: "DM-PLAINTEXT-7f3a", IdempotencyKey: "s1"})
	require.NoError(t, err)
	solver.WaitFor(1, wait)
	_, err = h.Client.SendChatMessage(ctx(t), &relaygwv1.SendChatMessageRequest{PartyTradePubkey: party.Pubkey(), Text: "CHAT-OUT-PLAINTEXT-91c2", IdempotencyKey: "c1"})
	require.NoError(t, err)
	party.WaitLines(1, wait)
	party.Send(chat.FormV2, "CHAT-IN-PLAINTEXT-44d0")
	require.Equal(t, "CHAT-IN-PLAINTEXT-44d0", s.next(t).GetContent())
	party.Forge(chat.FormV2, h.Mostro, "CHAT-FORGED-PLAINTEXT-0b1e")
	require.Eventually(t, func() bool { return rejected(t, h, "forged_signer") == 1 }, wait, 10*time.Millisecond)

	var metrics bytes.Buffer
	mfs, err := h.Registry.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		_, err := expfmt.MetricFamilyToText(&metrics, mf)
		require.NoError(t, err)
	}
	nsec, err := nip19.EncodePrivateKey(h.Serbero.RevealSecretHex())
	require.NoError(t, err)
	all := logs.String() + metrics.String()
	require.Contains(t, logs.String(), "dm sent", "the logs were captured")
	for _, secret := range []string{h.Serbero.RevealSecretHex(), nsec, "DM-PLAINTEXT-7f3a", "CHAT-OUT-PLAINTEXT-91c2", "CHAT-IN-PLAINTEXT-44d0", "CHAT-FORGED-PLAINTEXT-0b1e"} {
		//nolint:testifylint // NotContains would dump every captured log line and metric into the failure output
		require.False(t, strings.Contains(all, secret), "leaked: %s", secret)
	}
}

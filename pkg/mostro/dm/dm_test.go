package dm_test

import (
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/keyer"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/nbd-wtf/go-nostr/nip59"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/dm"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

func TestDMUnwrapsWithGoNostr(t *testing.T) {
	t.Parallel()
	serbero, solver := keys.Generate(), keys.Generate()
	now := time.Unix(1_800_000_000, 0)
	body := "New dispute 5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b <initiated> & more\n"
	wrap, err := dm.Wrap(serbero, solver.PublicKey(), body, dm.Options{Now: func() time.Time { return now }})
	require.NoError(t, err)
	require.Equal(t, nostr.KindGiftWrap, wrap.Kind)
	require.Equal(t, nostr.Tags{{"p", solver.PublicKey()}}, wrap.Tags)
	ok, err := wrap.CheckSignature()
	require.NoError(t, err)
	require.True(t, ok)

	// go-nostr's own NIP-59 code, as a solver's client would use it.
	kr, err := keyer.NewPlainKeySigner(solver.RevealSecretHex())
	require.NoError(t, err)
	rumor, err := nip59.GiftUnwrap(wrap, func(otherPub, ct string) (string, error) {
		return kr.Decrypt(t.Context(), ct, otherPub)
	})
	require.NoError(t, err)
	require.Equal(t, nostr.KindDirectMessage, rumor.Kind)
	require.Equal(t, serbero.PublicKey(), rumor.PubKey)
	require.Equal(t, body, rumor.Content)
	require.Equal(t, nostr.Tags{{"p", solver.PublicKey()}}, rumor.Tags)
	require.Equal(t, nostr.Timestamp(now.Unix()), rumor.CreatedAt)

	msg, err := dm.Unwrap(wrap, solver)
	require.NoError(t, err)
	require.Equal(t, serbero.PublicKey(), msg.From)
	require.Equal(t, body, msg.Body)
	require.Equal(t, rumor.ID, msg.Rumor.ID)

	_, err = dm.Unwrap(wrap, keys.Generate())
	require.ErrorIs(t, err, giftwrap.ErrNotForMe)
}

func TestUnwrapGoNostrDM(t *testing.T) {
	t.Parallel()
	sender, recipient := keys.Generate(), keys.Generate()
	kr, err := keyer.NewPlainKeySigner(sender.RevealSecretHex())
	require.NoError(t, err)
	rumor := nostr.Event{PubKey: sender.PublicKey(), CreatedAt: nostr.Now(), Kind: 14, Tags: nostr.Tags{{"p", recipient.PublicKey()}}, Content: "hi"}
	wrap, err := nip59.GiftWrap(rumor, recipient.PublicKey(),
		func(s string) (string, error) { return kr.Encrypt(t.Context(), s, recipient.PublicKey()) },
		func(e *nostr.Event) error { return kr.SignEvent(t.Context(), e) }, nil)
	require.NoError(t, err)
	msg, err := dm.Unwrap(wrap, recipient)
	require.NoError(t, err)
	require.Equal(t, "hi", msg.Body)
	require.Equal(t, sender.PublicKey(), msg.From)
}

func TestUnwrapRejectsNonDM(t *testing.T) {
	t.Parallel()
	sender, recipient := keys.Generate(), keys.Generate()
	// A rumor of kind 1 (a Mostro v1 message) is not a DM.
	w, err := giftwrap.Wrap(t.Context(), nostr.Event{PubKey: sender.PublicKey(), CreatedAt: nostr.Now(), Kind: 1, Content: "x"}, sender, recipient.PublicKey(), giftwrap.Options{})
	require.NoError(t, err)
	_, err = dm.Unwrap(w, recipient)
	require.ErrorIs(t, err, dm.ErrNotDM)
	// A rumor whose author is not the sealer is an impersonation.
	w, err = giftwrap.Wrap(t.Context(), nostr.Event{PubKey: keys.Generate().PublicKey(), CreatedAt: nostr.Now(), Kind: 14, Content: "x"}, sender, recipient.PublicKey(), giftwrap.Options{})
	require.NoError(t, err)
	_, err = dm.Unwrap(w, recipient)
	require.ErrorIs(t, err, dm.ErrNotDM)

	_, err = dm.Wrap(sender, "not-a-key", "x", dm.Options{})
	require.ErrorIs(t, err, keys.ErrInvalidPubkey)
}

// BenchmarkGiftWrapDM measures building one NIP-17 DM (rumor, seal, wrap:
// two ECDH + HKDF, two NIP-44 encryptions, two Schnorr signatures, one key
// generation) and reports DMs per second on one goroutine. "go-nostr" is
// go-nostr's nip59.GiftWrap with a plain keyer, for comparison.
func BenchmarkGiftWrapDM(b *testing.B) {
	serbero, solver := keys.Generate(), keys.Generate().PublicKey()
	body := "Dispute 5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b was opened by the buyer. Status: initiated. Take it in Mostrix."
	b.Run("dm.Wrap", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := dm.Wrap(serbero, solver, body, dm.Options{}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "DMs/s")
	})
	b.Run("go-nostr", func(b *testing.B) {
		b.ReportAllocs()
		sk := serbero.RevealSecretHex()
		for b.Loop() {
			rumor := nostr.Event{PubKey: serbero.PublicKey(), CreatedAt: nostr.Now(), Kind: 14, Tags: nostr.Tags{{"p", solver}}, Content: body}
			_, err := nip59.GiftWrap(rumor, solver, func(s string) (string, error) {
				ck, err := nip44.GenerateConversationKey(solver, sk)
				if err != nil {
					return "", err
				}
				return nip44.Encrypt(s, ck)
			}, func(e *nostr.Event) error { return e.Sign(sk) }, nil)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "DMs/s")
	})
}

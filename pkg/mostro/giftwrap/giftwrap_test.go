package giftwrap_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
)

type nip59Example struct {
	AuthorSK    string      `json:"author_sk"`
	RecipientSK string      `json:"recipient_sk"`
	Rumor       nostr.Event `json:"rumor"`
	Seal        nostr.Event `json:"seal"`
	Wrap        nostr.Event `json:"wrap"`
}

func TestNIP59Example(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../testdata/nip59-example.json")
	require.NoError(t, err)
	var ex nip59Example
	require.NoError(t, json.Unmarshal(b, &ex))

	recipient := keys.MustParse(ex.RecipientSK)
	author := keys.MustParse(ex.AuthorSK)
	require.Equal(t, ex.Wrap.Tags.Find("p")[1], recipient.PublicKey())

	o, err := giftwrap.Unwrap(ex.Wrap, recipient)
	require.NoError(t, err)
	require.Equal(t, "28a87d7c074d94a58e9e89bb3e9e4e813e2189f285d797b1c56069d36f59eaa7", o.Seal.ID)
	require.Equal(t, ex.Seal.ID, o.Seal.ID)
	require.Equal(t, ex.Seal.Sig, o.Seal.Sig)
	require.Equal(t, author.PublicKey(), o.SealSigner())
	require.Equal(t, "9dd003c6d3b73b74a85a9ab099469ce251653a7af76f523671ab828acd2a0ef9", o.Rumor.ID)
	require.Equal(t, ex.Rumor.ID, o.Rumor.ID)
	require.Equal(t, author.PublicKey(), o.RumorAuthor())
	require.Equal(t, "Are you going to the party tonight?", o.Rumor.Content)
	require.Equal(t, ex.Rumor.CreatedAt, o.Rumor.CreatedAt)

	// Anyone else: not for me.
	_, err = giftwrap.Unwrap(ex.Wrap, keys.Generate())
	require.ErrorIs(t, err, giftwrap.ErrNotForMe)
}

func TestWrapUnwrap(t *testing.T) {
	t.Parallel()
	sealer, recipient := keys.Generate(), keys.Generate()
	now := time.Unix(1_800_000_000, 0)
	rumor := nostr.Event{PubKey: keys.Generate().PublicKey(), CreatedAt: nostr.Timestamp(now.Unix()), Kind: 1, Content: "hello"}
	exp := now.Add(time.Hour)
	wrap, err := giftwrap.Wrap(context.Background(), rumor, sealer, recipient.PublicKey(), giftwrap.Options{
		Now: func() time.Time { return now }, Expiration: exp, PoW: 8, PoWWorkers: 1,
	})
	require.NoError(t, err)
	require.Equal(t, nostr.KindGiftWrap, wrap.Kind)
	ok, err := wrap.CheckSignature()
	require.NoError(t, err)
	require.True(t, ok)
	require.GreaterOrEqual(t, pow.LeadingZeroBits(wrap.ID), 8)
	require.Equal(t, nostr.Tag{"expiration", "1800003600"}, wrap.Tags[0])
	require.Equal(t, nostr.Tag{"p", recipient.PublicKey()}, wrap.Tags[1])
	require.Equal(t, "nonce", wrap.Tags[2][0])
	require.LessOrEqual(t, int64(wrap.CreatedAt), now.Unix())
	require.GreaterOrEqual(t, int64(wrap.CreatedAt), now.Add(-giftwrap.MaxTweak).Unix())

	o, err := giftwrap.Unwrap(wrap, recipient)
	require.NoError(t, err)
	require.Equal(t, rumor.PubKey, o.RumorAuthor(), "rumor author kept")
	require.Equal(t, sealer.PublicKey(), o.SealSigner(), "seal signer kept")
	require.Equal(t, "hello", o.Rumor.Content)
	require.Equal(t, nostr.Timestamp(now.Unix()), o.Rumor.CreatedAt)
	require.LessOrEqual(t, int64(o.Seal.CreatedAt), now.Unix())
}

func TestUnwrapMalformed(t *testing.T) {
	t.Parallel()
	recipient := keys.Generate()
	encryptWrap := func(t *testing.T, plaintext string) nostr.Event {
		t.Helper()
		eph := keys.Generate()
		ck, err := eph.ConversationKey(recipient.PublicKey())
		require.NoError(t, err)
		ct, err := nip44.Encrypt(plaintext, ck)
		require.NoError(t, err)
		w := nostr.Event{Kind: 1059, CreatedAt: nostr.Now(), Tags: nostr.Tags{{"p", recipient.PublicKey()}}, Content: ct}
		require.NoError(t, eph.Sign(&w))
		return w
	}
	sealer := keys.Generate()
	sealOf := func(t *testing.T, rumorJSON string, mutate func(*nostr.Event)) string {
		t.Helper()
		ck, err := sealer.ConversationKey(recipient.PublicKey())
		require.NoError(t, err)
		ct, err := nip44.Encrypt(rumorJSON, ck)
		require.NoError(t, err)
		s := nostr.Event{Kind: 13, CreatedAt: nostr.Now(), Tags: nostr.Tags{}, Content: ct}
		require.NoError(t, sealer.Sign(&s))
		if mutate != nil {
			mutate(&s)
		}
		return s.String()
	}
	goodRumor := nostr.Event{PubKey: sealer.PublicKey(), CreatedAt: nostr.Now(), Kind: 1, Tags: nostr.Tags{}, Content: "x"}
	badID := goodRumor
	badID.ID = "00" + goodRumor.GetID()[2:]

	cases := map[string]string{
		"SealNotJSON":      "not a seal",
		"SealWrongKind":    sealOf(t, goodRumor.String(), func(e *nostr.Event) { e.Kind = 1; _ = sealer.Sign(e) }),
		"SealBadSignature": sealOf(t, goodRumor.String(), func(e *nostr.Event) { e.Content = e.Content[:len(e.Content)-4] + "AAAA" }),
		"RumorNotJSON":     sealOf(t, "nope", nil),
		"RumorBadID":       sealOf(t, badID.String(), nil),
	}
	for name, plaintext := range cases {
		_, err := giftwrap.Unwrap(encryptWrap(t, plaintext), recipient)
		require.ErrorIs(t, err, giftwrap.ErrMalformed, name)
		require.NotErrorIs(t, err, giftwrap.ErrNotForMe, name)
	}
}

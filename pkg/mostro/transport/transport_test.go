package transport_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
	"github.com/serbero/serbero/pkg/mostro/transport"
)

const disputeID = "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"

func takeMsg(t testing.TB, v uint8) mostro.Message {
	t.Helper()
	m, err := mostro.NewAdminTakeDispute(v, disputeID)
	require.NoError(t, err)
	return m
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	cases := []struct {
		name string
		v    transport.Version
		opts transport.Options
		kind int
	}{
		{"V1", transport.V1, transport.Options{Now: clock}, mostro.KindGiftWrap},
		{"V1SignedPoW", transport.V1, transport.Options{Now: clock, SignTuple: true, PoW: 10, PoWWorkers: 1, Expiration: now.Add(time.Hour)}, mostro.KindGiftWrap},
		{"V2", transport.V2, transport.Options{Now: clock}, mostro.KindDirect},
		{"V2SignedPoW", transport.V2, transport.Options{Now: clock, SignTuple: true, PoW: 10, PoWWorkers: 1, Expiration: now.Add(time.Hour)}, mostro.KindDirect},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			serbero, mostroKeys := keys.Generate(), keys.Generate()
			msg := takeMsg(t, uint8(c.v))
			evt, err := transport.Build(context.Background(), c.v, msg, serbero, mostroKeys.PublicKey(), c.opts)
			require.NoError(t, err)
			require.Equal(t, c.kind, evt.Kind)
			ok, err := evt.CheckSignature()
			require.NoError(t, err)
			require.True(t, ok)
			require.GreaterOrEqual(t, pow.LeadingZeroBits(evt.ID), c.opts.PoW)
			require.Equal(t, mostroKeys.PublicKey(), evt.Tags.Find("p")[1])
			if !c.opts.Expiration.IsZero() {
				require.Equal(t, "1800003600", evt.Tags.Find("expiration")[1])
			}
			if c.v == transport.V2 {
				require.Equal(t, serbero.PublicKey(), evt.PubKey, "v2 is authored by the trade key")
				require.Equal(t, nostr.Timestamp(now.Unix()), evt.CreatedAt)
				require.Equal(t, "p", evt.Tags[0][0], "p first, as mostro-core")
			} else {
				require.NotEqual(t, serbero.PublicKey(), evt.PubKey, "v1 wrap is by an ephemeral key")
			}

			rcv, err := transport.Open(evt, mostroKeys, transport.OpenOptions{})
			require.NoError(t, err)
			require.Equal(t, c.v, rcv.Version)
			require.Equal(t, serbero.PublicKey(), rcv.Sender)
			require.Equal(t, serbero.PublicKey(), rcv.Identity)
			require.Equal(t, nostr.Timestamp(now.Unix()), rcv.CreatedAt, "inner created_at is now")
			require.Equal(t, string(msg.MustEncode()), string(rcv.Message.MustEncode()))
			require.Equal(t, c.opts.SignTuple, rcv.Tuple.Signature != "")
			if c.v == transport.V1 {
				require.Equal(t, mostro.KindTextNote, rcv.RumorKind)
			}

			_, err = transport.Open(evt, keys.Generate(), transport.OpenOptions{})
			require.ErrorIs(t, err, transport.ErrNotForMe)
		})
	}
}

func TestIdentitySplit(t *testing.T) {
	t.Parallel()
	identity, trade, receiver := keys.Generate(), keys.Generate(), keys.Generate()
	msg := takeMsg(t, 2)
	ctx := context.Background()

	v2, err := transport.BuildV2(ctx, msg, identity, trade, receiver.PublicKey(), transport.Options{SignTuple: true})
	require.NoError(t, err)
	rcv, err := transport.Open(v2, receiver, transport.OpenOptions{})
	require.NoError(t, err)
	require.Equal(t, trade.PublicKey(), rcv.Sender)
	require.Equal(t, identity.PublicKey(), rcv.Identity)

	v1, err := transport.BuildV1(ctx, takeMsg(t, 1), identity, trade, receiver.PublicKey(), transport.Options{SignTuple: true})
	require.NoError(t, err)
	rcv, err = transport.Open(v1, receiver, transport.OpenOptions{})
	require.NoError(t, err)
	require.Equal(t, trade.PublicKey(), rcv.Sender, "rumor author")
	require.Equal(t, identity.PublicKey(), rcv.Identity, "seal signer")
}

func TestForbiddenActions(t *testing.T) {
	t.Parallel()
	k, r := keys.Generate(), keys.Generate()
	for _, action := range []mostro.Action{mostro.ActionAdminSettle, mostro.ActionAdminCancel} {
		m := mostro.Message{Wrapper: mostro.WrapperDispute, Kind: mostro.MessageKind{Version: 2, ID: disputeID, Action: action}}
		for _, v := range []transport.Version{transport.V1, transport.V2} {
			_, err := transport.Build(context.Background(), v, m, k, r.PublicKey(), transport.Options{})
			require.ErrorIs(t, err, transport.ErrForbiddenAction)
		}
	}
}

// rawV1 wraps an arbitrary rumor to receiver, as a misbehaving peer could.
func rawV1(t *testing.T, author keys.Keys, receiver string, kind int, content string) nostr.Event {
	t.Helper()
	rumor := nostr.Event{PubKey: author.PublicKey(), CreatedAt: nostr.Now(), Kind: kind, Content: content}
	w, err := giftwrap.Wrap(context.Background(), rumor, author, receiver, giftwrap.Options{})
	require.NoError(t, err)
	return w
}

// rawV2 builds a kind-14 event with arbitrary plaintext content.
func rawV2(t *testing.T, author keys.Keys, receiver string, content string) nostr.Event {
	t.Helper()
	ck, err := author.ConversationKey(receiver)
	require.NoError(t, err)
	ct, err := nip44.Encrypt(content, ck)
	require.NoError(t, err)
	e := nostr.Event{CreatedAt: nostr.Now(), Kind: 14, Tags: nostr.Tags{{"p", receiver}}, Content: ct}
	require.NoError(t, author.Sign(&e))
	return e
}

func TestOpenRejects(t *testing.T) {
	t.Parallel()
	sender, receiver := keys.Generate(), keys.Generate()
	v1json := string(mostro.MustTupleV1(takeMsg(t, 1), ""))
	v2json := string(mostro.MustTupleV2(takeMsg(t, 2), ""))
	otherSig, err := mostro.SignMessage(keys.Generate(), takeMsg(t, 1))
	require.NoError(t, err)

	t.Run("V1RumorKind14", func(t *testing.T) {
		t.Parallel()
		w := rawV1(t, sender, receiver.PublicKey(), 14, v1json)
		_, err := transport.Open(w, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrRumorKind)
		rcv, err := transport.Open(w, receiver, transport.OpenOptions{AcceptRumorKind14: true})
		require.NoError(t, err)
		require.Equal(t, 14, rcv.RumorKind)
	})
	t.Run("V1ForeignTupleSignature", func(t *testing.T) {
		t.Parallel()
		w := rawV1(t, sender, receiver.PublicKey(), 1, string(mostro.MustTupleV1(takeMsg(t, 1), otherSig)))
		_, err := transport.Open(w, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrBadSignature)
	})
	t.Run("V1MalformedSignatureIsAbsent", func(t *testing.T) {
		t.Parallel()
		w := rawV1(t, sender, receiver.PublicKey(), 1, string(mostro.MustTupleV1(takeMsg(t, 1), "abc")))
		rcv, err := transport.Open(w, receiver, transport.OpenOptions{})
		require.NoError(t, err)
		require.Empty(t, rcv.Tuple.Signature)
	})
	t.Run("V1ThreeTuple", func(t *testing.T) {
		t.Parallel()
		w := rawV1(t, sender, receiver.PublicKey(), 1, v2json)
		_, err := transport.Open(w, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrMalformed)
	})
	t.Run("V1Garbage", func(t *testing.T) {
		t.Parallel()
		w := rawV1(t, sender, receiver.PublicKey(), 1, "[1,2]")
		_, err := transport.Open(w, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrMalformed)
		require.NotErrorIs(t, err, transport.ErrNotForMe)
	})
	t.Run("V2TwoTuple", func(t *testing.T) {
		t.Parallel()
		_, err := transport.Open(rawV2(t, sender, receiver.PublicKey(), v1json), receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrMalformed)
	})
	t.Run("V2ForeignTupleSignature", func(t *testing.T) {
		t.Parallel()
		e := rawV2(t, sender, receiver.PublicKey(), string(mostro.MustTupleV2(takeMsg(t, 1), otherSig)))
		_, err := transport.Open(e, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrBadSignature)
	})
	t.Run("V2TamperedEvent", func(t *testing.T) {
		t.Parallel()
		e := rawV2(t, sender, receiver.PublicKey(), v2json)
		e.CreatedAt++
		_, err := transport.Open(e, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrBadSignature)
	})
	t.Run("V2GraftedIdentityProof", func(t *testing.T) {
		t.Parallel()
		proof, err := mostro.SignIdentityProof(keys.Generate(), keys.Generate().PublicKey(), takeMsg(t, 2))
		require.NoError(t, err)
		tuple, err := mostro.EncodeTupleV2(takeMsg(t, 2), "", proof)
		require.NoError(t, err)
		_, err = transport.Open(rawV2(t, sender, receiver.PublicKey(), string(tuple)), receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrBadSignature)
	})
	t.Run("OtherKind", func(t *testing.T) {
		t.Parallel()
		e := nostr.Event{Kind: 1, CreatedAt: nostr.Now()}
		require.NoError(t, sender.Sign(&e))
		_, err := transport.Open(e, receiver, transport.OpenOptions{})
		require.ErrorIs(t, err, transport.ErrMalformed)
	})
}

func BenchmarkBuildV2PoW(b *testing.B) {
	serbero, mostroPub := keys.Generate(), keys.Generate().PublicKey()
	msg := takeMsg(b, 2)
	for _, d := range []int{0, 8, 12} {
		b.Run("pow="+strconv.Itoa(d), func(b *testing.B) {
			for b.Loop() {
				if _, err := transport.Build(context.Background(), transport.V2, msg, serbero, mostroPub, transport.Options{PoW: d}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBuildV1(b *testing.B) {
	serbero, mostroPub := keys.Generate(), keys.Generate().PublicKey()
	msg := takeMsg(b, 1)
	for b.Loop() {
		if _, err := transport.Build(context.Background(), transport.V1, msg, serbero, mostroPub, transport.Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

package event_test

import (
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// signed builds a kind 38386 event signed by sk, as relaygw would stream
// it, plus its signature.
func signed(t *testing.T, sk string, tags nostr.Tags) (*relaygwv1.DisputeEvent, string) {
	t.Helper()
	ev := nostr.Event{Kind: event.KindDispute, CreatedAt: 1755800000, Tags: tags}
	require.NoError(t, ev.Sign(sk))
	return toProto(ev), ev.Sig
}

func toProto(ev nostr.Event) *relaygwv1.DisputeEvent {
	out := &relaygwv1.DisputeEvent{
		Cursor: 7, EventId: ev.ID, Pubkey: ev.PubKey, Content: ev.Content,
		CreatedAt: timestamppb.New(ev.CreatedAt.Time()),
	}
	for _, tg := range ev.Tags {
		out.Tags = append(out.Tags, &relaygwv1.Tag{Values: tg})
	}
	return out
}

func mostrodTags(d, s string) nostr.Tags {
	return nostr.Tags{
		{"d", d}, {"expiration", "1756000000"}, {"s", s}, {"initiator", "buyer"},
		{"created_at", "1755799990"}, {"y", "mostro", "Test"}, {"z", "dispute"},
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	sk := nostr.GeneratePrivateKey()
	pk, err := nostr.GetPublicKey(sk)
	require.NoError(t, err)
	otherSK := nostr.GeneratePrivateKey()

	t.Run("MostrodEvent", func(t *testing.T) {
		ev, sig := signed(t, sk, mostrodTags("d-1", "initiated"))
		rev, err := event.Parse(ev, event.KindDispute, sig, pk)
		require.NoError(t, err)
		require.Equal(t, event.Revision{
			Cursor: 7, EventID: ev.EventId, Pubkey: pk, CreatedAt: 1755800000, DisputeID: "d-1",
			Status: lifecycle.StatusInitiated, Initiator: "buyer", InitiatorRaw: "buyer", OpenedAt: 1755799990,
		}, rev)
	})
	t.Run("AuthorCaseInsensitive", func(t *testing.T) {
		ev, sig := signed(t, sk, mostrodTags("d-1", "initiated"))
		_, err := event.Parse(ev, event.KindDispute, sig, toUpper(pk))
		require.NoError(t, err)
	})
	t.Run("PublishedAtTagAndMissingInitiator", func(t *testing.T) {
		ev, sig := signed(t, sk, nostr.Tags{{"d", "d-2"}, {"s", "initiated"}, {"published_at", "1755799999"}})
		rev, err := event.Parse(ev, event.KindDispute, sig, pk)
		require.NoError(t, err)
		require.Equal(t, "unknown", rev.Initiator)
		require.Empty(t, rev.InitiatorRaw)
		require.EqualValues(t, 1755799999, rev.OpenedAt)
	})
	t.Run("UnrecognisedInitiatorIsUnknown", func(t *testing.T) {
		ev, sig := signed(t, sk, nostr.Tags{{"d", "d-2"}, {"s", "initiated"}, {"initiator", "Buyer"}})
		rev, err := event.Parse(ev, event.KindDispute, sig, pk)
		require.NoError(t, err)
		require.Equal(t, "unknown", rev.Initiator)
		require.Equal(t, "Buyer", rev.InitiatorRaw)
	})
	t.Run("InitiatorUnknownTag", func(t *testing.T) {
		ev, sig := signed(t, sk, nostr.Tags{{"d", "d-2"}, {"s", "settled"}, {"initiator", "unknown"}})
		rev, err := event.Parse(ev, event.KindDispute, sig, pk)
		require.NoError(t, err)
		require.Equal(t, "unknown", rev.Initiator)
		require.Equal(t, lifecycle.StatusSettled, rev.Status)
	})
	rejects := []struct {
		name   string
		build  func() (*relaygwv1.DisputeEvent, string, int)
		reason string
	}{
		{"ForgedAuthor", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, otherSK, mostrodTags("d-1", "initiated"))
			return ev, sig, event.KindDispute
		}, event.ReasonForgedAuthor},
		{"ClaimsMostroButSignedByOther", func() (*relaygwv1.DisputeEvent, string, int) {
			ev := nostr.Event{Kind: event.KindDispute, CreatedAt: 1755800000, Tags: mostrodTags("d-1", "initiated")}
			require.NoError(t, ev.Sign(otherSK))
			ev.PubKey = pk
			ev.ID = ev.GetID()
			return toProto(ev), ev.Sig, event.KindDispute
		}, event.ReasonBadSignature},
		{"TamperedTag", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, mostrodTags("d-1", "initiated"))
			ev.Tags[2].Values[1] = "settled"
			return ev, sig, event.KindDispute
		}, event.ReasonBadID},
		{"WrongKind", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, mostrodTags("d-1", "initiated"))
			return ev, sig, 38383
		}, event.ReasonWrongKind},
		{"MissingD", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, nostr.Tags{{"s", "initiated"}, {"initiator", "buyer"}})
			return ev, sig, event.KindDispute
		}, event.ReasonMissingD},
		{"EmptyD", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, nostr.Tags{{"d", ""}, {"s", "initiated"}})
			return ev, sig, event.KindDispute
		}, event.ReasonMissingD},
		{"MissingS", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, nostr.Tags{{"d", "d-1"}, {"initiator", "buyer"}})
			return ev, sig, event.KindDispute
		}, event.ReasonMissingS},
		{"Unsigned", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, _ := signed(t, sk, mostrodTags("d-1", "in-progress"))
			return ev, "", event.KindDispute
		}, event.ReasonBadSignature},
		{"UppercaseSIsNotS", func() (*relaygwv1.DisputeEvent, string, int) {
			ev, sig := signed(t, sk, nostr.Tags{{"d", "d-1"}, {"S", "initiated"}})
			return ev, sig, event.KindDispute
		}, event.ReasonMissingS},
	}
	for _, tc := range rejects {
		t.Run(tc.name, func(t *testing.T) {
			ev, sig, kind := tc.build()
			_, err := event.Parse(ev, kind, sig, pk)
			var re *event.RejectError
			require.ErrorAs(t, err, &re)
			require.Equal(t, tc.reason, re.Reason)
		})
	}
}

func TestStatusExtraction(t *testing.T) {
	t.Parallel()
	sk := nostr.GeneratePrivateKey()
	pk, _ := nostr.GetPublicKey(sk)
	for _, s := range []string{"initiated", "in-progress", "weird-new-status"} {
		ev, sig := signed(t, sk, nostr.Tags{{"d", "x"}, {"s", s}, {"s", "settled"}})
		rev, err := event.Parse(ev, event.KindDispute, sig, pk)
		require.NoError(t, err)
		require.Equal(t, lifecycle.Status(s), rev.Status, "first s tag wins")
	}
}

func TestNewer(t *testing.T) {
	t.Parallel()
	require.True(t, event.Newer(11, "ff", 10, "00"), "higher created_at wins")
	require.False(t, event.Newer(10, "00", 11, "ff"))
	require.True(t, event.Newer(10, "aa", 10, "bb"), "same second: lower id wins")
	require.False(t, event.Newer(10, "bb", 10, "aa"))
	require.False(t, event.Newer(10, "aa", 10, "aa"), "same revision is not newer")
}

func toUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 32
		}
	}
	return string(b)
}

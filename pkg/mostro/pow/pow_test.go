package pow_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip13"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
)

func TestLeadingZeroBits(t *testing.T) {
	t.Parallel()
	for id, want := range map[string]int{
		"ffff000000000000000000000000000000000000000000000000000000000000": 0,
		"7fff000000000000000000000000000000000000000000000000000000000000": 1,
		"00ff000000000000000000000000000000000000000000000000000000000000": 8,
		"000f000000000000000000000000000000000000000000000000000000000000": 12,
		"0000010000000000000000000000000000000000000000000000000000000000": 23,
		"0000000000000000000000000000000000000000000000000000000000000000": 256,
		"short": 0,
		"zz00000000000000000000000000000000000000000000000000000000000000": 0,
	} {
		require.Equal(t, want, pow.LeadingZeroBits(id), id)
	}
	require.NoError(t, pow.Check("000f000000000000000000000000000000000000000000000000000000000000", 12))
	require.ErrorIs(t, pow.Check("000f000000000000000000000000000000000000000000000000000000000000", 13), pow.ErrInsufficient)
	require.NoError(t, pow.Check("ff", 0))
}

func TestMine(t *testing.T) {
	t.Parallel()
	k := keys.Generate()
	for _, d := range []int{1, 8, 12} {
		evt := nostr.Event{PubKey: k.PublicKey(), CreatedAt: 1_800_000_000, Kind: 14,
			Tags: nostr.Tags{{"p", "abc"}, {"nonce", "stale", "99"}}, Content: "héllo \"quoted\"\n"}
		require.NoError(t, pow.Mine(context.Background(), &evt, d, pow.Options{Workers: 2}))
		require.Len(t, evt.Tags, 2, "old nonce tag replaced")
		require.Equal(t, "nonce", evt.Tags[1][0])
		require.Equal(t, strconv.Itoa(d), evt.Tags[1][2])
		require.Equal(t, evt.GetID(), evt.ID)
		require.GreaterOrEqual(t, pow.LeadingZeroBits(evt.ID), d)
		require.Equal(t, nostr.Timestamp(1_800_000_000), evt.CreatedAt, "created_at kept")
		require.NoError(t, k.Sign(&evt))
		require.GreaterOrEqual(t, pow.CommittedDifficulty(&evt), d)
		require.Equal(t, d, nip13.CommittedDifficulty(&evt), "go-nostr agrees")
	}
	evt := nostr.Event{Kind: 1}
	require.ErrorIs(t, pow.Mine(context.Background(), &evt, 4, pow.Options{}), pow.ErrMissingPubkey)
	before := evt
	before.PubKey = k.PublicKey()
	evt = before
	require.NoError(t, pow.Mine(context.Background(), &evt, 0, pow.Options{}))
	require.Equal(t, before, evt, "difficulty 0 leaves the event alone")
}

func TestMineStopsWithContext(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	evt := nostr.Event{PubKey: keys.Generate().PublicKey(), Kind: 1}
	err := pow.Mine(ctx, &evt, 60, pow.Options{Workers: 1})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestCommittedDifficulty(t *testing.T) {
	t.Parallel()
	evt := nostr.Event{ID: "000f000000000000000000000000000000000000000000000000000000000000"}
	require.Equal(t, 0, pow.CommittedDifficulty(&evt), "no nonce tag")
	evt.Tags = nostr.Tags{{"nonce", "1", "8"}}
	require.Equal(t, 8, pow.CommittedDifficulty(&evt), "capped by the commitment")
	evt.Tags = nostr.Tags{{"nonce", "1", "20"}}
	require.Equal(t, 0, pow.CommittedDifficulty(&evt), "commitment not met")
}

// BenchmarkMine mines a v2-sized event at difficulty 8, 12 and 16 on one
// worker (one core); ns/op is the expected mining time.
func BenchmarkMine(b *testing.B) {
	k := keys.Generate()
	content := strings.Repeat("a", 400)
	for _, d := range []int{8, 12, 16} {
		b.Run("difficulty="+strconv.Itoa(d), func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				evt := nostr.Event{PubKey: k.PublicKey(), CreatedAt: nostr.Timestamp(1_800_000_000 + i), Kind: 14,
					Tags: nostr.Tags{{"p", k.PublicKey()}, {"expiration", "1800003600"}}, Content: content}
				if err := pow.Mine(context.Background(), &evt, d, pow.Options{Workers: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

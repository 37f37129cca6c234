package verify_test

import (
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/relaygw/internal/verify"
)

// A real-shaped dispute event of mostrod (tag order as it sends them).
func dispute() nostr.Event {
	return nostr.Event{Kind: 38386, Content: "", Tags: nostr.Tags{
		{"d", "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"}, {"expiration", "1763000000"}, {"s", "initiated"},
		{"initiator", "buyer"}, {"created_at", "1755799990"}, {"y", "mostro", "Test node"}, {"z", "dispute"},
	}}
}

func TestStorable(t *testing.T) {
	t.Parallel()
	many := func(n int) nostr.Tags {
		ts := make(nostr.Tags, n)
		for i := range ts {
			ts[i] = nostr.Tag{"t", "x"}
		}
		return ts
	}
	tests := []struct {
		name   string
		mutate func(*nostr.Event)
		want   verify.Reason
	}{
		{"MostroDispute", func(*nostr.Event) {}, verify.OK},
		{"DAtTheBound", func(e *nostr.Event) { e.Tags[0][1] = strings.Repeat("a", verify.MaxDTag) }, verify.OK},
		{"LongD", func(e *nostr.Event) { e.Tags[0][1] = strings.Repeat("a", 4000) }, verify.OversizedDTag},
		{"DJustPastTheBound", func(e *nostr.Event) { e.Tags[0][1] = strings.Repeat("a", verify.MaxDTag+1) }, verify.OversizedDTag},
		{"ManyTags", func(e *nostr.Event) { e.Tags = many(verify.MaxTags + 1) }, verify.TooManyTags},
		{"TagsAtTheBound", func(e *nostr.Event) { e.Tags = many(verify.MaxTags) }, verify.OK},
		{"WideTag", func(e *nostr.Event) { e.Tags = append(e.Tags, make(nostr.Tag, verify.MaxTagValues+1)) }, verify.OversizedTag},
		{"LongTagValue", func(e *nostr.Event) {
			e.Tags = append(e.Tags, nostr.Tag{"y", strings.Repeat("n", verify.MaxTagValue+1)})
		}, verify.OversizedTag},
		{"TagsTooLargeTogether", func(e *nostr.Event) {
			for range verify.MaxTagsBytes/verify.MaxTagValue + 1 {
				e.Tags = append(e.Tags, nostr.Tag{"r", strings.Repeat("u", verify.MaxTagValue-1)})
			}
		}, verify.OversizedTag},
		{"LargeContent", func(e *nostr.Event) { e.Content = strings.Repeat("c", verify.MaxContent+1) }, verify.OversizedContent},
		{"NulInContent", func(e *nostr.Event) { e.Content = "a\x00b" }, verify.Unstorable},
		{"InvalidUTF8InTag", func(e *nostr.Event) { e.Tags[2][1] = "\xff" }, verify.Unstorable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev := dispute()
			tt.mutate(&ev)
			require.Equal(t, tt.want, verify.Storable(&ev))
		})
	}
}

// FuzzStorable: an event Storable accepts fits every bound and holds only
// text Postgres can store; one it refuses names a reason.
func FuzzStorable(f *testing.F) {
	seed := dispute()
	f.Add([]byte(seed.String()))
	f.Add([]byte(`{"kind":38386,"content":"a\u0000b","tags":[["d","` + strings.Repeat("x", 200) + `"]]}`))
	f.Add([]byte(`{"kind":38385,"tags":[["lnd_uris","a","b","c"],["fee","0.006"]],"content":"\xff"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev nostr.Event
		if ev.UnmarshalJSON(b) != nil {
			return
		}
		r := verify.Storable(&ev)
		if r != verify.OK {
			require.NotEmpty(t, string(r))
			return
		}
		require.LessOrEqual(t, len(ev.Content), verify.MaxContent)
		require.LessOrEqual(t, len(ev.Tags), verify.MaxTags)
		require.True(t, verify.StorableText(ev.Content))
		for _, tag := range ev.Tags {
			require.LessOrEqual(t, len(tag), verify.MaxTagValues)
			if len(tag) >= 2 && tag[0] == "d" {
				require.LessOrEqual(t, len(tag[1]), verify.MaxDTag)
			}
			for _, v := range tag {
				require.LessOrEqual(t, len(v), verify.MaxTagValue)
				require.True(t, verify.StorableText(v))
			}
		}
	})
}

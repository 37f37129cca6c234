package keys_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

func TestConversationCacheGivesTheSameKeys(t *testing.T) {
	t.Parallel()

	plain := keys.Generate()
	cached := plain.WithConversationCache()
	for range 3 { // miss, then hits
		for _, peer := range []keys.Keys{keys.Generate(), keys.Generate()} {
			want, err := plain.ConversationKey(peer.PublicKey())
			require.NoError(t, err)
			got, err := cached.ConversationKey(peer.PublicKey())
			require.NoError(t, err)
			require.Equal(t, want, got)
			again, err := cached.ConversationKey(peer.PublicKey())
			require.NoError(t, err)
			require.Equal(t, want, again)
		}
	}
	_, err := cached.ConversationKey("not-a-key")
	require.Error(t, err, "a bad peer is still refused, and never cached")
	_, err = cached.ConversationKey("not-a-key")
	require.Error(t, err)
}

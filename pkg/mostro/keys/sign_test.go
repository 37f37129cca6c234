package keys_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"testing"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// Signatures are btcec's schnorr.Sign ones, byte for byte (deterministic
// RFC6979 nonces), for keys with even and odd Y, and verify.
func TestSignMatchesBtcec(t *testing.T) {
	t.Parallel()
	for i := range 300 {
		k := keys.Generate()
		sk, err := hex.DecodeString(k.RevealSecretHex())
		require.NoError(t, err)
		priv, _ := btcecPrivKey(sk)
		var h [32]byte
		_, _ = rand.Read(h[:])
		if i == 0 {
			h = [32]byte{} // all zero
		}
		want, err := schnorr.Sign(priv, h[:], schnorr.FastSign())
		require.NoError(t, err)
		got, err := k.SignHash(h)
		require.NoError(t, err)
		require.Equal(t, hex.EncodeToString(want.Serialize()), got)
		require.True(t, keys.VerifyHash(k.PublicKey(), h, got))
	}
}

func TestSignEventVerifiesWithGoNostr(t *testing.T) {
	t.Parallel()
	k := keys.MustParse("0000000000000000000000000000000000000000000000000000000000000003")
	for _, content := range []string{"", "hello", "a longer content with unicode: ñ ✓"} {
		ev := nostr.Event{Kind: 1, CreatedAt: 1_800_000_000, Content: content}
		require.NoError(t, k.Sign(&ev))
		require.Equal(t, k.PublicKey(), ev.PubKey)
		h := sha256.Sum256(ev.Serialize())
		require.Equal(t, hex.EncodeToString(h[:]), ev.ID)
		ok, err := ev.CheckSignature()
		require.NoError(t, err)
		require.True(t, ok)
	}
}

func btcecPrivKey(b []byte) (*btcec.PrivateKey, *btcec.PublicKey) { return btcec.PrivKeyFromBytes(b) }

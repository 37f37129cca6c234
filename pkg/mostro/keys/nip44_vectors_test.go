package keys_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/nbd-wtf/go-nostr/nip44"
	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/chacha20"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// The official NIP-44 v2 vectors (paulmillr/nip44), run through what the
// library uses: keys.ConversationKey and go-nostr's nip44 Encrypt/Decrypt.

type nip44Vectors struct {
	V2 struct {
		Valid struct {
			GetConversationKey []struct {
				Sec1            string `json:"sec1"`
				Pub2            string `json:"pub2"`
				ConversationKey string `json:"conversation_key"`
			} `json:"get_conversation_key"`
			GetMessageKeys struct {
				ConversationKey string `json:"conversation_key"`
				Keys            []struct {
					Nonce       string `json:"nonce"`
					ChachaKey   string `json:"chacha_key"`
					ChachaNonce string `json:"chacha_nonce"`
					HmacKey     string `json:"hmac_key"`
				} `json:"keys"`
			} `json:"get_message_keys"`
			CalcPaddedLen  [][2]int `json:"calc_padded_len"`
			EncryptDecrypt []struct {
				Sec1            string `json:"sec1"`
				Sec2            string `json:"sec2"`
				ConversationKey string `json:"conversation_key"`
				Nonce           string
				Plaintext       string
				Payload         string
			} `json:"encrypt_decrypt"`
			EncryptDecryptLongMsg []struct {
				ConversationKey string `json:"conversation_key"`
				Nonce           string
				Pattern         string
				Repeat          int
				PlaintextSHA256 string `json:"plaintext_sha256"`
				PayloadSHA256   string `json:"payload_sha256"`
			} `json:"encrypt_decrypt_long_msg"`
		}
		Invalid struct {
			EncryptMsgLengths  []int `json:"encrypt_msg_lengths"`
			GetConversationKey []struct {
				Sec1, Pub2, Note string
			} `json:"get_conversation_key"`
			Decrypt []struct {
				ConversationKey string `json:"conversation_key"`
				Nonce           string
				Plaintext       string
				Payload         string
				Note            string
			}
		}
	}
}

func loadNIP44(t *testing.T) nip44Vectors {
	t.Helper()
	b, err := os.ReadFile("../testdata/nip44.vectors.json")
	require.NoError(t, err)
	var v nip44Vectors
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.V2.Valid.GetConversationKey)
	return v
}

func hex32(t *testing.T, s string) [32]byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	require.Len(t, b, 32)
	var out [32]byte
	copy(out[:], b)
	return out
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestNIP44Vectors(t *testing.T) {
	t.Parallel()
	v := loadNIP44(t)

	t.Run("GetConversationKey", func(t *testing.T) {
		t.Parallel()
		for _, c := range v.V2.Valid.GetConversationKey {
			k, err := keys.Parse(c.Sec1)
			require.NoError(t, err, c.Sec1)
			ck, err := k.ConversationKey(c.Pub2)
			require.NoError(t, err)
			require.Equal(t, c.ConversationKey, hex.EncodeToString(ck[:]), "sec1 %s pub2 %s", c.Sec1, c.Pub2)
		}
	})

	t.Run("GetMessageKeys", func(t *testing.T) {
		t.Parallel()
		// nip44 keeps its message-key derivation private: encrypt with the
		// vector's nonce and check that the vector's chacha key/nonce
		// decrypt the ciphertext and its hmac key produced the MAC.
		ck := hex32(t, v.V2.Valid.GetMessageKeys.ConversationKey)
		require.NotEmpty(t, v.V2.Valid.GetMessageKeys.Keys)
		for _, c := range v.V2.Valid.GetMessageKeys.Keys {
			nonce := mustHex(t, c.Nonce)
			payload, err := nip44.Encrypt("message keys vector", ck, nip44.WithCustomNonce(nonce))
			require.NoError(t, err)
			raw, err := base64.StdEncoding.DecodeString(payload)
			require.NoError(t, err)
			ct, mac := raw[33:len(raw)-32], raw[len(raw)-32:]
			cipher, err := chacha20.NewUnauthenticatedCipher(mustHex(t, c.ChachaKey), mustHex(t, c.ChachaNonce))
			require.NoError(t, err)
			padded := make([]byte, len(ct))
			cipher.XORKeyStream(padded, ct)
			n := binary.BigEndian.Uint16(padded)
			require.Equal(t, "message keys vector", string(padded[2:2+n]))
			h := hmac.New(sha256.New, mustHex(t, c.HmacKey))
			h.Write(nonce)
			h.Write(ct)
			require.Equal(t, h.Sum(nil), mac)
		}
	})

	t.Run("CalcPaddedLen", func(t *testing.T) {
		t.Parallel()
		ck := hex32(t, v.V2.Valid.GetMessageKeys.ConversationKey)
		for _, c := range v.V2.Valid.CalcPaddedLen {
			n, want := c[0], c[1]
			if n > nip44.MaxPlaintextSize {
				// 65536 cannot be encrypted (its length does not fit the
				// u16 prefix); the largest message pads to the same size.
				n = nip44.MaxPlaintextSize
			}
			payload, err := nip44.Encrypt(strings.Repeat("x", n), ck)
			require.NoError(t, err)
			raw, err := base64.StdEncoding.DecodeString(payload)
			require.NoError(t, err)
			require.Equal(t, want, len(raw)-1-32-32-2, "plaintext length %d", c[0])
		}
	})

	t.Run("EncryptDecrypt", func(t *testing.T) {
		t.Parallel()
		for _, c := range v.V2.Valid.EncryptDecrypt {
			k1, err := keys.Parse(c.Sec1)
			require.NoError(t, err)
			k2, err := keys.Parse(c.Sec2)
			require.NoError(t, err)
			ck, err := k1.ConversationKey(k2.PublicKey())
			require.NoError(t, err)
			require.Equal(t, c.ConversationKey, hex.EncodeToString(ck[:]))
			ckBack, err := k2.ConversationKey(k1.PublicKey())
			require.NoError(t, err)
			require.Equal(t, ck, ckBack)
			payload, err := nip44.Encrypt(c.Plaintext, ck, nip44.WithCustomNonce(mustHex(t, c.Nonce)))
			require.NoError(t, err)
			require.Equal(t, c.Payload, payload)
			plain, err := nip44.Decrypt(c.Payload, ck)
			require.NoError(t, err)
			require.Equal(t, c.Plaintext, plain)
		}
	})

	t.Run("EncryptDecryptLongMsg", func(t *testing.T) {
		t.Parallel()
		for _, c := range v.V2.Valid.EncryptDecryptLongMsg {
			plain := strings.Repeat(c.Pattern, c.Repeat)
			sum := sha256.Sum256([]byte(plain))
			require.Equal(t, c.PlaintextSHA256, hex.EncodeToString(sum[:]))
			ck := hex32(t, c.ConversationKey)
			payload, err := nip44.Encrypt(plain, ck, nip44.WithCustomNonce(mustHex(t, c.Nonce)))
			require.NoError(t, err)
			psum := sha256.Sum256([]byte(payload))
			require.Equal(t, c.PayloadSHA256, hex.EncodeToString(psum[:]))
			back, err := nip44.Decrypt(payload, ck)
			require.NoError(t, err)
			require.Equal(t, plain, back)
		}
	})

	t.Run("InvalidEncryptLengths", func(t *testing.T) {
		t.Parallel()
		ck := hex32(t, v.V2.Valid.GetMessageKeys.ConversationKey)
		require.NotEmpty(t, v.V2.Invalid.EncryptMsgLengths)
		for _, n := range v.V2.Invalid.EncryptMsgLengths {
			_, err := nip44.Encrypt(strings.Repeat("x", n), ck)
			require.Error(t, err, "length %d", n)
		}
	})

	t.Run("InvalidConversationKey", func(t *testing.T) {
		t.Parallel()
		require.NotEmpty(t, v.V2.Invalid.GetConversationKey)
		for _, c := range v.V2.Invalid.GetConversationKey {
			k, err := keys.Parse(c.Sec1)
			if err == nil {
				_, err = k.ConversationKey(c.Pub2)
			}
			require.Error(t, err, c.Note)
		}
	})

	t.Run("InvalidDecrypt", func(t *testing.T) {
		t.Parallel()
		require.NotEmpty(t, v.V2.Invalid.Decrypt)
		for _, c := range v.V2.Invalid.Decrypt {
			_, err := nip44.Decrypt(c.Payload, hex32(t, c.ConversationKey))
			require.Error(t, err, c.Note)
		}
	})
}

func TestKeysNeverPrintSecret(t *testing.T) {
	t.Parallel()
	k := keys.Generate()
	secret := k.RevealSecretHex()
	for _, s := range []string{k.String(), k.GoString(), k.LogValue().String()} {
		require.NotContains(t, s, secret)
		require.Contains(t, s, k.PublicKey())
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	k := keys.Generate()
	back, err := keys.Parse(strings.ToUpper(k.RevealSecretHex()))
	require.NoError(t, err)
	require.Equal(t, k.PublicKey(), back.PublicKey())
	for _, bad := range []string{"", "zz", strings.Repeat("0", 64), strings.Repeat("f", 64), "nsec1garbage"} {
		_, err := keys.Parse(bad)
		require.ErrorIs(t, err, keys.ErrInvalidSecret, bad)
	}
	require.False(t, keys.ValidPubkey(strings.ToUpper(k.PublicKey())))
	require.True(t, keys.ValidPubkey(k.PublicKey()))
}

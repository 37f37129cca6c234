// Package keys holds a secp256k1 Nostr key pair parsed once, with the
// operations the protocol needs: BIP-340 event and hash signatures, the raw
// ECDH x-coordinate, and the NIP-44 v2 conversation key.
//
// A Keys value never prints its secret: String, GoString, Format and
// LogValue all show only the public key. RevealSecretHex is the one explicit
// way out, for interop with libraries that take hex secrets (go-nostr's
// keyer, nip44 test vectors).
package keys

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"
	"golang.org/x/crypto/hkdf"
)

// ErrInvalidSecret is returned for a secret that is not a valid secp256k1
// scalar (zero, not below the group order, or badly encoded).
var ErrInvalidSecret = errors.New("invalid secret key")

// ErrInvalidPubkey is returned for a public key that is not 64 lowercase or
// uppercase hex characters naming a point on the curve.
var ErrInvalidPubkey = errors.New("invalid public key")

// Keys is a parsed key pair. The zero value is invalid (IsZero reports it).
type Keys struct {
	cache  *convCache // nil unless WithConversationCache
	priv   *btcec.PrivateKey
	signer *signer
	pub    string
}

// convCacheSize bounds a key's conversation-key cache; past it, new peers
// are computed every time (the cache never evicts, so it cannot thrash).
const convCacheSize = 4096

// convCache remembers NIP-44 conversation keys per peer.
type convCache struct {
	mu sync.Mutex
	m  map[string][32]byte
}

// WithConversationCache returns k with a cache of the NIP-44 conversation
// keys it derives (one ECDH per peer instead of one per message). Use it for
// long-lived keys that talk to the same peers again and again (Serbero's
// identity sealing DMs to its solvers); never for one-use ephemeral keys.
// The cache holds derived secrets in memory, like the key itself.
func (k Keys) WithConversationCache() Keys {
	k.cache = &convCache{m: make(map[string][32]byte)}
	return k
}

// Generate returns a fresh random key pair.
func Generate() Keys {
	for {
		priv, err := btcec.NewPrivateKey()
		if err != nil {
			continue
		}
		return fromPriv(priv)
	}
}

// Parse reads a secret key given as 64 hex characters or an nsec.
func Parse(s string) (Keys, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), "nsec1") {
		prefix, v, err := nip19.Decode(strings.ToLower(s))
		if err != nil || prefix != "nsec" {
			return Keys{}, fmt.Errorf("%w: bad nsec", ErrInvalidSecret)
		}
		hexSK, ok := v.(string)
		if !ok {
			return Keys{}, fmt.Errorf("%w: bad nsec", ErrInvalidSecret)
		}
		s = hexSK
	}
	if len(s) != 64 {
		return Keys{}, fmt.Errorf("%w: want 64 hex characters or an nsec", ErrInvalidSecret)
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return Keys{}, fmt.Errorf("%w: not hex", ErrInvalidSecret)
	}
	return FromBytes(b)
}

// MustParse is Parse for tests and fixed vectors; it panics on error.
func MustParse(s string) Keys {
	k, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return k
}

// FromBytes builds a key pair from a 32-byte big-endian scalar, which must
// be in [1, n-1].
func FromBytes(b []byte) (Keys, error) {
	if len(b) != 32 {
		return Keys{}, fmt.Errorf("%w: want 32 bytes", ErrInvalidSecret)
	}
	var s secp256k1.ModNScalar
	if overflow := s.SetByteSlice(b); overflow || s.IsZero() {
		return Keys{}, fmt.Errorf("%w: out of range", ErrInvalidSecret)
	}
	return fromPriv(secp256k1.NewPrivateKey(&s)), nil
}

func fromPriv(priv *btcec.PrivateKey) Keys {
	s := newSigner(priv)
	return Keys{priv: priv, signer: s, pub: hex.EncodeToString(s.xonly[:])}
}

// IsZero reports whether k is the zero value (no key).
func (k Keys) IsZero() bool { return k.priv == nil }

// PublicKey returns the x-only public key as 64 lowercase hex characters.
func (k Keys) PublicKey() string { return k.pub }

// RevealSecretHex returns the secret key as hex. Only for interop with
// libraries that take hex secrets; never log the result.
func (k Keys) RevealSecretHex() string {
	b := k.priv.Key.Bytes()
	return hex.EncodeToString(b[:])
}

// String shows the public key only.
func (k Keys) String() string { return "keys(" + k.pub + ")" }

// GoString shows the public key only.
func (k Keys) GoString() string { return k.String() }

// Format shows the public key only, whatever the verb.
func (k Keys) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue shows the public key only.
func (k Keys) LogValue() slog.Value { return slog.StringValue(k.String()) }

// Sign sets evt.PubKey to k's public key, then its ID and BIP-340 signature.
func (k Keys) Sign(evt *nostr.Event) error {
	if k.priv == nil {
		return ErrInvalidSecret
	}
	if evt.Tags == nil {
		evt.Tags = nostr.Tags{}
	}
	evt.PubKey = k.pub
	h := sha256.Sum256(evt.Serialize())
	sig := k.signer.sign(h)
	evt.ID = hex.EncodeToString(h[:])
	evt.Sig = hex.EncodeToString(sig[:])
	return nil
}

// SignHash returns the BIP-340 signature of a 32-byte digest as 128 hex
// characters.
func (k Keys) SignHash(h [32]byte) (string, error) {
	if k.priv == nil {
		return "", ErrInvalidSecret
	}
	sig := k.signer.sign(h)
	return hex.EncodeToString(sig[:]), nil
}

// VerifyHash reports whether sigHex is a valid BIP-340 signature of h by the
// x-only public key pubHex. Malformed inputs verify as false.
func VerifyHash(pubHex string, h [32]byte, sigHex string) bool {
	pk, err := ParsePubkey(pubHex)
	if err != nil {
		return false
	}
	sb, err := hex.DecodeString(sigHex)
	if err != nil || len(sb) != 64 {
		return false
	}
	sig, err := schnorr.ParseSignature(sb)
	if err != nil {
		return false
	}
	return sig.Verify(h[:], pk)
}

// ParsePubkey parses a 64-hex-character x-only public key (lifted with even
// Y, as BIP-340 does).
func ParsePubkey(pubHex string) (*btcec.PublicKey, error) {
	if len(pubHex) != 64 {
		return nil, fmt.Errorf("%w: want 64 hex characters", ErrInvalidPubkey)
	}
	b, err := hex.DecodeString(pubHex)
	if err != nil {
		return nil, fmt.Errorf("%w: not hex", ErrInvalidPubkey)
	}
	pk, err := schnorr.ParsePubKey(b)
	if err != nil {
		return nil, fmt.Errorf("%w: not on the curve", ErrInvalidPubkey)
	}
	return pk, nil
}

// ValidPubkey reports whether s is a lowercase 64-hex x-only public key on
// the curve.
func ValidPubkey(s string) bool {
	if len(s) != 64 || strings.ToLower(s) != s {
		return false
	}
	_, err := ParsePubkey(s)
	return err == nil
}

// ECDH returns the raw 32-byte x-coordinate of k·P, where P is peerPub
// lifted with even Y. No hashing: this is nostr's generate_shared_key and
// NIP-04's shared secret.
func (k Keys) ECDH(peerPub string) ([32]byte, error) {
	var out [32]byte
	if k.priv == nil {
		return out, ErrInvalidSecret
	}
	pk, err := ParsePubkey(peerPub)
	if err != nil {
		return out, err
	}
	var point, result secp256k1.JacobianPoint
	pk.AsJacobian(&point)
	secp256k1.ScalarMultNonConst(&k.priv.Key, &point, &result)
	result.ToAffine()
	result.X.PutBytesUnchecked(out[:])
	return out, nil
}

// ConversationKey returns the NIP-44 v2 conversation key between k and
// peerPub: HKDF-extract(salt "nip44-v2", ECDH x-coordinate). peerPub may be
// k's own public key (self-encryption, used by chat v2).
func (k Keys) ConversationKey(peerPub string) ([32]byte, error) {
	var ck [32]byte
	if c := k.cache; c != nil {
		c.mu.Lock()
		cached, ok := c.m[peerPub]
		c.mu.Unlock()
		if ok {
			return cached, nil
		}
	}
	shared, err := k.ECDH(peerPub)
	if err != nil {
		return ck, err
	}
	copy(ck[:], hkdf.Extract(sha256.New, shared[:], []byte("nip44-v2")))
	if c := k.cache; c != nil {
		c.mu.Lock()
		if len(c.m) < convCacheSize {
			c.m[peerPub] = ck
		}
		c.mu.Unlock()
	}
	return ck, nil
}

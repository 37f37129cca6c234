package chat

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"

	"golang.org/x/crypto/hkdf"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// HKDF info strings of chat v2 (see docs/mostro-protocol.md#dispute-chat).
const (
	InfoConv = "mostro:chat:conv:v1"
	InfoSign = "mostro:chat:sign:v1"
)

// ErrSharedKey means an ECDH output is not a usable secret key (v1) or the
// parties' inputs are unusable.
var ErrSharedKey = errors.New("shared-secret is not a valid SecretKey")

// Channel is one dispute-chat channel between own key and a peer (the
// solver and one party), with the keys of both forms. Both ends derive the
// same channel: ECDH is symmetric.
type Channel struct {
	// Own is the deriving side's public key.
	Own string
	// Peer is the other side's public key (a party's trade key, or the
	// solver's key from the party's side).
	Peer string
	// Shared is the legacy v1 channel key: the raw ECDH x-coordinate used as
	// a secret key. Its public key is the v1 p-tag address.
	Shared keys.Keys
	// Conv is K_conv: its public key is the v2 p-tag, its conversation key
	// with itself encrypts v2 lines.
	Conv keys.Keys
	// Sign is K_sign: it signs (authors) every v2 outer event of the
	// channel, from either side.
	Sign keys.Keys

	convKey    [32]byte // NIP-44 conversation key of K_conv with itself
	hasConvKey bool
}

// ConvConversationKey is the NIP-44 conversation key v2 lines are
// encrypted with (K_conv with its own public key), cached by Derive.
func (c Channel) ConvConversationKey() ([32]byte, error) {
	if c.hasConvKey {
		return c.convKey, nil
	}
	return c.Conv.ConversationKey(c.Conv.PublicKey())
}

// SharedPubkey is the v1 address (p tag of legacy gift wraps).
func (c Channel) SharedPubkey() string { return c.Shared.PublicKey() }

// ConvPubkey is the v2 p tag.
func (c Channel) ConvPubkey() string { return c.Conv.PublicKey() }

// SignPubkey is the v2 outer author; subscribe by it.
func (c Channel) SignPubkey() string { return c.Sign.PublicKey() }

// SharedSecret is the raw 32-byte ECDH x-coordinate of own·peer.
func SharedSecret(own keys.Keys, peer string) ([32]byte, error) {
	return own.ECDH(peer)
}

// Derive computes the channel between own and peer: v1 shared key and v2
// K_conv / K_sign.
func Derive(own keys.Keys, peer string) (Channel, error) {
	shared, err := own.ECDH(peer)
	if err != nil {
		return Channel{}, fmt.Errorf("derive chat keys: %w", err)
	}
	sharedKeys, err := keys.FromBytes(shared[:])
	if err != nil {
		return Channel{}, fmt.Errorf("derive chat keys: %w", ErrSharedKey)
	}
	conv, err := deriveHKDF(shared, InfoConv)
	if err != nil {
		return Channel{}, err
	}
	sign, err := deriveHKDF(shared, InfoSign)
	if err != nil {
		return Channel{}, err
	}
	ck, err := conv.ConversationKey(conv.PublicKey())
	if err != nil {
		return Channel{}, fmt.Errorf("derive chat keys: %w", err)
	}
	return Channel{Own: own.PublicKey(), Peer: peer, Shared: sharedKeys, Conv: conv, Sign: sign, convKey: ck, hasConvKey: true}, nil
}

// deriveHKDF is HKDF-SHA256(salt empty, ikm shared, info, 32 bytes); when
// the output is not a valid scalar, a counter byte 0x01, 0x02, … is
// appended to info and it retries.
func deriveHKDF(shared [32]byte, info string) (keys.Keys, error) {
	infoBytes := []byte(info)
	for counter := 0; counter < 256; counter++ {
		in := infoBytes
		if counter > 0 {
			in = append(append([]byte(nil), infoBytes...), byte(counter))
		}
		var out [32]byte
		if _, err := io.ReadFull(hkdf.New(sha256.New, shared[:], nil, in), out[:]); err != nil {
			return keys.Keys{}, fmt.Errorf("hkdf %s: %w", info, err)
		}
		if k, err := keys.FromBytes(out[:]); err == nil {
			return k, nil
		}
	}
	return keys.Keys{}, fmt.Errorf("hkdf %s: %w", info, ErrSharedKey)
}

// Package nostrkey reads Nostr public keys as operators write them: 64 hex
// characters in any case, or a NIP-19 npub. Normalize turns either into the
// one form Serbero stores and compares: 64 lowercase hex characters of a
// BIP-340 x-only key that is a point on secp256k1.
package nostrkey

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/btcsuite/btcd/btcec/v2/schnorr"
	"github.com/btcsuite/btcd/btcutil/bech32"
)

// ErrInvalid is wrapped by every error Normalize returns.
var ErrInvalid = errors.New("invalid public key")

// npubPrefix starts every bech32 public key (NIP-19).
const npubPrefix = "npub1"

// Normalize accepts a public key as 64 hex characters (any case) or an
// npub, with surrounding white space, and returns it as 64 lowercase hex
// characters. The key must be an x-only point on secp256k1. Normalize of a
// normalised key returns it unchanged.
func Normalize(s string) (string, error) {
	hexKey, err := CanonicalHex(s)
	if err != nil {
		return "", err
	}
	raw, _ := hex.DecodeString(hexKey) // CanonicalHex returned valid hex
	if _, err := schnorr.ParsePubKey(raw); err != nil {
		return "", fmt.Errorf("%w: not a point on secp256k1", ErrInvalid)
	}
	return hexKey, nil
}

// CanonicalHex is Normalize without the curve check: it checks the form
// only (64 hex characters or an npub) and returns lowercase hex. It is for
// comparing keys as written; a key Serbero relies on goes through Normalize.
func CanonicalHex(s string) (string, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToLower(s), npubPrefix) {
		raw, err := decodeNpub(s)
		if err != nil {
			return "", err
		}
		return hex.EncodeToString(raw), nil
	}
	if len(s) != 64 {
		return "", fmt.Errorf("%w: want 64 hex characters or an npub, got %d characters", ErrInvalid, len(s))
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", fmt.Errorf("%w: not hex", ErrInvalid)
	}
	return strings.ToLower(s), nil
}

// Valid reports whether Normalize accepts s.
func Valid(s string) bool {
	_, err := Normalize(s)
	return err == nil
}

// Npub encodes a normalised (or any valid) key as an npub.
func Npub(s string) (string, error) {
	hexKey, err := Normalize(s)
	if err != nil {
		return "", err
	}
	raw, _ := hex.DecodeString(hexKey) // Normalize returned valid hex
	data, err := bech32.ConvertBits(raw, 8, 5, true)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	out, err := bech32.Encode("npub", data)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return out, nil
}

func decodeNpub(s string) ([]byte, error) {
	// bech32 strings are all lowercase or all uppercase; Decode checks
	// that and the checksum.
	hrp, data, err := bech32.Decode(s)
	if err != nil {
		return nil, fmt.Errorf("%w: bad npub: %w", ErrInvalid, err)
	}
	if hrp != "npub" {
		return nil, fmt.Errorf("%w: bad npub: prefix %q", ErrInvalid, hrp)
	}
	raw, err := bech32.ConvertBits(data, 5, 8, false)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("%w: bad npub: not 32 bytes", ErrInvalid)
	}
	return raw, nil
}

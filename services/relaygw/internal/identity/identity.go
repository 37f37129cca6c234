// Package identity is the custody of Serbero's secret key inside relaygw.
// The key is parsed once from the configuration Secret; an Identity never
// prints it (String, GoString, Format and LogValue show the public key)
// and errors never echo the input. Everything that needs the secret asks
// the Identity to act (sign, derive) instead of reading it.
package identity

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"golang.org/x/crypto/hkdf"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// ErrInvalidKey is returned for a key that is not 64 hex characters or an
// nsec naming a valid secp256k1 scalar. It never contains the input.
var ErrInvalidKey = errors.New("[serbero].private_key is not a valid secret key (want 64 hex characters or an nsec1... string); the value is not shown")

// Identity is Serbero's key pair.
type Identity struct {
	keys keys.Keys
	mac  []byte // HMAC key for idempotency fingerprints, derived from the secret
}

// Load parses the secret (hex or nsec).
func Load(secret config.Secret) (*Identity, error) {
	if !secret.IsSet() {
		return nil, errors.New("the serbero private key is required ([serbero].private_key, SERBERO_PRIVATE_KEY or SERBERO_PRIVATE_KEY_FILE)")
	}
	k, err := keys.Parse(secret.Reveal())
	if err != nil {
		return nil, ErrInvalidKey
	}
	return FromKeys(k), nil
}

// FromKeys wraps parsed keys.
func FromKeys(k keys.Keys) *Identity {
	mac := make([]byte, 32)
	sk, _ := hex.DecodeString(k.RevealSecretHex())
	r := hkdf.New(sha256.New, sk, nil, []byte("serbero:relaygw:idempotency-mac:v1"))
	_, _ = io.ReadFull(r, mac)
	clear(sk)
	// Serbero seals every DM to the same few solvers: cache their
	// conversation keys (one ECDH per solver, not per DM).
	return &Identity{keys: k.WithConversationCache(), mac: mac}
}

// Keys returns the key pair, for the protocol library (pkg/mostro), which
// signs and derives without exposing the secret.
func (id *Identity) Keys() keys.Keys { return id.keys }

// PublicKey is Serbero's public key, hex.
func (id *Identity) PublicKey() string { return id.keys.PublicKey() }

// Fingerprint returns an HMAC of the parts (length-prefixed), keyed by a
// key derived from the secret: it identifies a request without revealing
// its content to someone reading the database.
func (id *Identity) Fingerprint(parts ...string) string {
	h := hmac.New(sha256.New, id.mac)
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// String shows the public key only.
func (id *Identity) String() string { return "identity(" + id.keys.PublicKey() + ")" }

// GoString shows the public key only.
func (id *Identity) GoString() string { return id.String() }

// Format shows the public key only, whatever the verb.
func (id *Identity) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(id.String())) }

// LogValue shows the public key only.
func (id *Identity) LogValue() slog.Value { return slog.StringValue(id.String()) }

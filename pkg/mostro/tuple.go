package mostro

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// IdentityProof is the third element of a v2 tuple: the sender's identity
// public key and its signature over IdentityProofPayload. nil in
// full-privacy mode (identity == trade key), which is Serbero's case.
type IdentityProof struct {
	Pubkey    string
	Signature string
}

// Tuple is the decrypted content of a protocol message:
// v1 [message, sig|null], v2 [message, sig|null, [identity_pk, identity_sig]|null].
type Tuple struct {
	// Message is the decoded message.
	Message Message
	// MessageJSON is the message element exactly as received.
	MessageJSON json.RawMessage
	// Signature is the trade-key signature (hex), "" when null.
	Signature string
	// Identity is the v2 identity proof, nil when null or on v1.
	Identity *IdentityProof
	// Len is the number of tuple elements (2 for v1, 3 for v2).
	Len int
}

// EncodeTupleV1 returns the canonical v1 tuple [msg, sig|null]; sig "" is
// null.
func EncodeTupleV1(msg Message, sig string) ([]byte, error) {
	dst := make([]byte, 0, 320)
	dst = append(dst, '[')
	dst, err := msg.AppendEncode(dst)
	if err != nil {
		return nil, err
	}
	dst = append(dst, ',')
	dst = appendSig(dst, sig)
	return append(dst, ']'), nil
}

// EncodeTupleV2 returns the canonical v2 tuple [msg, sig|null, proof|null].
func EncodeTupleV2(msg Message, sig string, proof *IdentityProof) ([]byte, error) {
	dst := make([]byte, 0, 320)
	dst = append(dst, '[')
	dst, err := msg.AppendEncode(dst)
	if err != nil {
		return nil, err
	}
	dst = append(dst, ',')
	dst = appendSig(dst, sig)
	dst = append(dst, ',')
	if proof == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '[')
		dst = appendString(dst, proof.Pubkey)
		dst = append(dst, ',')
		dst = appendString(dst, proof.Signature)
		dst = append(dst, ']')
	}
	return append(dst, ']'), nil
}

func appendSig(dst []byte, sig string) []byte {
	if sig == "" {
		return append(dst, "null"...)
	}
	return appendString(dst, sig)
}

// DecodeTuple parses a 2- or 3-element tuple. The transports check the
// length their version requires.
func DecodeTuple(b []byte) (Tuple, error) {
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil {
		return Tuple{}, fmt.Errorf("%w: tuple: %w", ErrMalformedMessage, err)
	}
	if len(arr) != 2 && len(arr) != 3 {
		return Tuple{}, fmt.Errorf("%w: tuple has %d elements", ErrMalformedMessage, len(arr))
	}
	msg, err := DecodeMessage(arr[0])
	if err != nil {
		return Tuple{}, err
	}
	t := Tuple{Message: msg, MessageJSON: arr[0], Len: len(arr)}
	var sig *string
	if err := json.Unmarshal(arr[1], &sig); err != nil {
		return Tuple{}, fmt.Errorf("%w: tuple signature: %w", ErrMalformedMessage, err)
	}
	if sig != nil {
		t.Signature = *sig
	}
	if len(arr) == 3 && !bytes.Equal(bytes.TrimSpace(arr[2]), []byte("null")) {
		var proof []string
		if err := json.Unmarshal(arr[2], &proof); err != nil || len(proof) != 2 {
			return Tuple{}, fmt.Errorf("%w: identity proof", ErrMalformedMessage)
		}
		t.Identity = &IdentityProof{Pubkey: proof[0], Signature: proof[1]}
	}
	return t, nil
}

// SignMessage returns mostro-core's Message::sign: the BIP-340 signature
// by k over SHA-256 of the canonical JSON of msg.
func SignMessage(k keys.Keys, msg Message) (string, error) {
	b, err := msg.Encode()
	if err != nil {
		return "", err
	}
	return k.SignHash(sha256.Sum256(b))
}

// VerifyMessageSignature is mostro-core's Message::verify_signature: it
// re-serializes msg canonically and checks sig by pubkey over its SHA-256.
func VerifyMessageSignature(pubkey string, msg Message, sig string) bool {
	b, err := msg.Encode()
	if err != nil {
		return false
	}
	return keys.VerifyHash(pubkey, sha256.Sum256(b), sig)
}

// IdentityProofPayload is the string a v2 identity key signs:
// "mostro-transport-v2-identity:<trade pubkey hex>:<message json>".
func IdentityProofPayload(tradePubkey string, msgJSON []byte) []byte {
	p := make([]byte, 0, 30+64+1+len(msgJSON))
	p = append(p, "mostro-transport-v2-identity:"...)
	p = append(p, tradePubkey...)
	p = append(p, ':')
	return append(p, msgJSON...)
}

// SignIdentityProof builds the v2 identity proof of identity for a message
// sent with the trade key tradePubkey.
func SignIdentityProof(identity keys.Keys, tradePubkey string, msg Message) (*IdentityProof, error) {
	b, err := msg.Encode()
	if err != nil {
		return nil, err
	}
	sig, err := identity.SignHash(sha256.Sum256(IdentityProofPayload(tradePubkey, b)))
	if err != nil {
		return nil, err
	}
	return &IdentityProof{Pubkey: identity.PublicKey(), Signature: sig}, nil
}

// VerifyIdentityProof checks a v2 identity proof against the event author
// (trade key) and the re-serialized message.
func VerifyIdentityProof(proof IdentityProof, tradePubkey string, msg Message) bool {
	b, err := msg.Encode()
	if err != nil {
		return false
	}
	return keys.VerifyHash(proof.Pubkey, sha256.Sum256(IdentityProofPayload(tradePubkey, b)), proof.Signature)
}

// MustTupleV1 is EncodeTupleV1 for values known to be valid (tests and
// fakes); it panics on error.
func MustTupleV1(msg Message, sig string) []byte {
	b, err := EncodeTupleV1(msg, sig)
	if err != nil {
		panic(err)
	}
	return b
}

// MustTupleV2 is EncodeTupleV2 without identity proof for values known to
// be valid (tests and fakes); it panics on error.
func MustTupleV2(msg Message, sig string) []byte {
	b, err := EncodeTupleV2(msg, sig, nil)
	if err != nil {
		panic(err)
	}
	return b
}

package keys

import (
	"crypto/sha256"

	"github.com/btcsuite/btcd/btcec/v2"
)

// signer is a key's BIP-340 signing state, computed once per key: the
// secret scalar negated when the public key's Y is odd (BIP-340 signs with
// the key whose point has even Y) and the x-only public key. schnorr.Sign
// recomputes the public key (a scalar base multiplication) on every
// signature; signing here skips that and produces the very same
// signatures (same RFC6979 nonces: the tests compare them).
type signer struct {
	d     btcec.ModNScalar
	xonly [32]byte
}

func newSigner(priv *btcec.PrivateKey) *signer {
	s := &signer{d: priv.Key}
	compressed := priv.PubKey().SerializeCompressed()
	if compressed[0] == 0x03 { // odd Y
		s.d.Negate()
	}
	copy(s.xonly[:], compressed[1:])
	return s
}

// rfc6979ExtraDataV0 is SHA-256("BIP-340"), the extra data btcec feeds
// RFC6979 for BIP-340 nonces.
var rfc6979ExtraDataV0 = sha256.Sum256([]byte("BIP-340"))

// challengeTag is SHA-256("BIP0340/challenge"), twice, the prefix of the
// tagged hash of BIP-340's challenge.
var challengeTag = func() []byte {
	t := sha256.Sum256([]byte("BIP0340/challenge"))
	return append(t[:], t[:]...)
}()

// sign returns the 64-byte BIP-340 signature of hash, as schnorr.Sign with
// FastSign does: nonce k from RFC6979 (the negated secret, hash, extra data
// V0, iterating when a hash overflows), R = k·G with k negated when R has
// odd Y, e = tagged_hash(challenge, R.x || P.x || hash) mod n, and
// s = k + e·d mod n.
func (s *signer) sign(hash [32]byte) [64]byte {
	var dBytes [32]byte
	s.d.PutBytes(&dBytes)
	defer clear(dBytes[:])
	for iteration := uint32(0); ; iteration++ {
		k := btcec.NonceRFC6979(dBytes[:], hash[:], rfc6979ExtraDataV0[:], nil, iteration)
		var r btcec.JacobianPoint
		btcec.ScalarBaseMultNonConst(k, &r)
		r.ToAffine()
		if r.Y.IsOdd() {
			k.Negate()
		}
		var rx [32]byte
		r.X.PutBytes(&rx)
		h := sha256.New()
		h.Write(challengeTag)
		h.Write(rx[:])
		h.Write(s.xonly[:])
		h.Write(hash[:])
		var c [32]byte
		h.Sum(c[:0])
		var e btcec.ModNScalar
		if overflow := e.SetBytes(&c); overflow != 0 {
			k.Zero()
			continue // as btcec: try the next nonce
		}
		sig := new(btcec.ModNScalar).Mul2(&e, &s.d).Add(k)
		k.Zero()
		var out [64]byte
		copy(out[:32], rx[:])
		sig.PutBytesUnchecked(out[32:])
		return out
	}
}

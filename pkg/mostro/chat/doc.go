// Package chat is the Mostro dispute chat between the solver and each
// party (docs/mostro-protocol.md#dispute-chat): key derivation, outbound
// lines in both wire forms, and the stateless part of inbound validation.
//
// Keys. shared = the raw 32-byte ECDH x-coordinate of own·peer (no
// hashing). Legacy v1 uses shared itself as a secret key; its public key is
// the p address. v2 derives K_conv and K_sign = HKDF-SHA256(salt empty,
// ikm shared, info "mostro:chat:conv:v1" / "mostro:chat:sign:v1", 32
// bytes), appending a counter byte to info if an output is not a valid
// scalar. Both sides derive the same Channel; nothing secret needs storing:
// re-derive from Serbero's key and the stored trade pubkey.
//
// Lines. The inner event is always kind 1, signed by the sender's own key,
// created_at now. v2 outer: kind 14 signed by K_sign, exactly one p =
// pub(K_conv), created_at now, content NIP-44 self-encryption under K_conv.
// v1 outer: kind 1059 signed by a fresh ephemeral key, p = pub(shared),
// created_at backdated up to two days, content NIP-44(ephemeral → shared).
//
// Validation. Validator.Validate runs the protocol's mandatory order minus
// its stateful steps and returns a typed *Rejection (ReasonOf gives a
// metric label). The relay gateway owns the stateful steps: an outer-id
// LRU and per-channel rate limit before Validate, durable inner-id dedup
// after it, and the subscription cursor (min(accepted ts, now)).
// Subscribe to v2 lines by author ({"kinds":[14],"authors":[pub(K_sign)]}),
// to legacy lines by p ({"kinds":[1059],"#p":[pub(shared)]}, since ≥ 2 days
// back).
package chat

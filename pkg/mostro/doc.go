// Package mostro encodes and decodes Mostro protocol messages exactly as
// mostro-core does. It is the root of Serbero's pure protocol library: no
// relay I/O anywhere in the module, only keys, bytes and go-nostr events.
// The protocol rules it implements are written in docs/mostro-protocol.md.
//
// # Packages
//
//   - mostro (this package): Message / MessageKind / Payload, the canonical
//     encoder (byte-identical to serde_json::to_string: field order
//     version, request_id, trade_index, id, action, payload; nulls present;
//     id omitted when absent; no HTML escaping; lowercase hyphenated UUIDs;
//     f64 in ryu form), the tolerant decoder (unknown actions, cant_do
//     reasons and payload variants are kept; a dispute payload may be
//     ["<id>", info|null] or a bare string), v1/v2 tuples and their BIP-340
//     signatures over SHA-256 of the canonical JSON.
//   - keys: a parsed key pair (hex or nsec) that never prints its secret;
//     event signing, raw ECDH, NIP-44 conversation keys.
//   - pow: NIP-13 mining, leading-zero count, difficulty check.
//   - giftwrap: NIP-59 seal + wrap with two-day backdating, and an unwrap
//     that keeps both the rumor author and the seal signer and separates
//     "not for me" from "malformed".
//   - transport: Mostro protocol v1 (gift wrap, rumor kind 1) and v2
//     (signed kind 14, NIP-44, expiration tag), PoW on the outer event.
//   - dm: NIP-17 direct messages (Serbero → solvers).
//   - chat: dispute-chat keys (v1 shared key, v2 K_conv/K_sign), outbound
//     lines in both forms, and the stateless inbound validator.
//   - relayconn: the NIP-01 client of one relay connection (websocket of
//     github.com/coder/websocket), with bounded reads and buffers; used by
//     relaygw and by the test kit instead of go-nostr's racy Relay.
//
// # What Serbero may send
//
// The only outbound constructor is NewAdminTakeDispute (id = dispute id).
// There is no constructor for admin-settle or admin-cancel, and
// transport.Build refuses them (ErrForbiddenAction): Serbero never moves
// funds. They still decode, so the fake Mostro can judge them.
//
// # Typical use (relay gateway)
//
//	msg, _ := mostro.NewAdminTakeDispute(mostro.ProtocolV2, disputeID)
//	evt, _ := transport.Build(ctx, transport.V2, msg, serberoKeys, mostroPubkey,
//		transport.Options{PoW: info.PowFirstContact, Expiration: time.Now().Add(time.Hour)})
//	// publish evt; for each kind-14 (v2) or kind-1059 (v1) event p-tagged to us:
//	rcv, err := transport.Open(evt, serberoKeys, transport.OpenOptions{})
//	// errors.Is(err, transport.ErrNotForMe): someone else's; other errors: malformed.
//	// rcv.Sender == mostroPubkey && rcv.Message.Kind.ID == disputeID → the reply.
//	// rcv.Message.Kind.Payload.Dispute.Info → buyer/seller trade keys.
//
// # Protocol facts the code relies on
//
// mostrod drops (silently) any request whose rumor (v1) or event (v2)
// created_at is more than 10 s old, whose outer event lacks the node's PoW
// (pow, and on v2 pow_first_contact for senders it does not know), or whose
// v1 rumor is not kind 1. It replies v1 as [msg, null] in a rumor of kind 1
// sealed with its own key, v2 as [msg, null, null] in a kind-14 event.
package mostro

// Package transport carries mostro-core messages over Nostr, as mostro-core
// 0.14 does:
//
//   - v1 (gift wrap): rumor kind 1 authored by the trade key, created_at now,
//     content [message, sig|null]; seal (kind 13) by the identity key; gift
//     wrap (kind 1059) by a fresh key with tags [expiration?, p=receiver],
//     seal and wrap created_at backdated up to two days; PoW on the wrap.
//   - v2 (NIP-44 direct): a signed kind-14 event authored by the trade key,
//     tags [p=receiver, expiration?], created_at now, content NIP-44 of
//     [message, sig|null, identity_proof|null]; PoW on the event.
//
// Serbero's identity key is its trade key, so it sends a null identity
// proof and (by default) a null tuple signature, as mostrod allows.
// Build refuses admin-settle and admin-cancel: Serbero never moves funds.
//
// Open reads either version and reports the trade key (Sender) and identity
// key (Identity) separately, the tuple signature verified when present. It
// distinguishes ErrNotForMe (NIP-44 does not decrypt with our key) from
// malformed input. It does not check freshness or PoW: receivers apply
// their own policy (the fake Mostro applies mostrod's).
package transport

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
)

// ErrNotForMe means the event does not decrypt with the receiver's key.
var ErrNotForMe = errors.New("mostro message not addressed to this key")

// ErrMalformed wraps every other failure to open a message.
var ErrMalformed = errors.New("malformed mostro message event")

// ErrBadSignature means a signature inside the message does not verify
// (event signature on v2, tuple signature, identity proof). It also wraps
// ErrMalformed.
var ErrBadSignature = fmt.Errorf("%w: bad signature", ErrMalformed)

// ErrRumorKind means a v1 rumor is not kind 1 (mostro-core >= 0.10
// requires it). It also wraps ErrMalformed.
var ErrRumorKind = fmt.Errorf("%w: rumor kind", ErrMalformed)

// ErrForbiddenAction is returned by Build for admin-settle and admin-cancel.
var ErrForbiddenAction = errors.New("serbero never sends admin-settle or admin-cancel")

// Version is a Mostro protocol version (mostro.ProtocolV1 or ProtocolV2).
type Version int

// The protocol versions.
const (
	V1 Version = mostro.ProtocolV1
	V2 Version = mostro.ProtocolV2
)

// Options tunes Build.
type Options struct {
	// Now is the clock; nil means time.Now. The rumor (v1) or event (v2)
	// created_at is now: mostrod drops anything older than 10 s.
	Now func() time.Time
	// PoW is the NIP-13 difficulty to mine on the outer event.
	PoW int
	// PoWWorkers is the number of mining goroutines (0: GOMAXPROCS).
	PoWWorkers int
	// Expiration, when non-zero, adds a NIP-40 expiration tag.
	Expiration time.Time
	// SignTuple includes the trade-key signature of the message in the
	// tuple; otherwise it is null (allowed when identity == trade key).
	SignTuple bool
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Build builds a message from k (identity == trade key) to receiver in the
// given protocol version.
func Build(ctx context.Context, v Version, msg mostro.Message, k keys.Keys, receiver string, opts Options) (nostr.Event, error) {
	switch v {
	case V1:
		return BuildV1(ctx, msg, k, k, receiver, opts)
	case V2:
		return BuildV2(ctx, msg, k, k, receiver, opts)
	}
	return nostr.Event{}, fmt.Errorf("unknown protocol version %d", v)
}

func guard(msg mostro.Message) error {
	if msg.IsForbiddenOutbound() {
		return ErrForbiddenAction
	}
	return nil
}

// BuildV1 builds a v1 gift wrap: rumor by trade, seal by identity.
func BuildV1(ctx context.Context, msg mostro.Message, identity, trade keys.Keys, receiver string, opts Options) (nostr.Event, error) {
	if err := guard(msg); err != nil {
		return nostr.Event{}, err
	}
	if !keys.ValidPubkey(receiver) {
		return nostr.Event{}, fmt.Errorf("build v1: receiver: %w", keys.ErrInvalidPubkey)
	}
	sig := ""
	if opts.SignTuple {
		var err error
		if sig, err = mostro.SignMessage(trade, msg); err != nil {
			return nostr.Event{}, fmt.Errorf("build v1: %w", err)
		}
	}
	content, err := mostro.EncodeTupleV1(msg, sig)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("build v1: %w", err)
	}
	now := opts.now()
	rumor := nostr.Event{
		PubKey:    trade.PublicKey(),
		CreatedAt: nostr.Timestamp(now.Unix()),
		Kind:      mostro.KindTextNote,
		Tags:      nostr.Tags{},
		Content:   string(content),
	}
	return giftwrap.Wrap(ctx, rumor, identity, receiver, giftwrap.Options{
		Now: opts.Now, Expiration: opts.Expiration, PoW: opts.PoW, PoWWorkers: opts.PoWWorkers,
	})
}

// BuildV2 builds a v2 signed kind-14 event authored by trade. When
// identity differs from trade, the tuple carries its identity proof.
func BuildV2(ctx context.Context, msg mostro.Message, identity, trade keys.Keys, receiver string, opts Options) (nostr.Event, error) {
	if err := guard(msg); err != nil {
		return nostr.Event{}, err
	}
	if !keys.ValidPubkey(receiver) {
		return nostr.Event{}, fmt.Errorf("build v2: receiver: %w", keys.ErrInvalidPubkey)
	}
	sig := ""
	if opts.SignTuple {
		var err error
		if sig, err = mostro.SignMessage(trade, msg); err != nil {
			return nostr.Event{}, fmt.Errorf("build v2: %w", err)
		}
	}
	var proof *mostro.IdentityProof
	if identity.PublicKey() != trade.PublicKey() {
		var err error
		if proof, err = mostro.SignIdentityProof(identity, trade.PublicKey(), msg); err != nil {
			return nostr.Event{}, fmt.Errorf("build v2: %w", err)
		}
	}
	content, err := mostro.EncodeTupleV2(msg, sig, proof)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("build v2: %w", err)
	}
	ck, err := trade.ConversationKey(receiver)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("build v2: %w", err)
	}
	ct, err := nip44.Encrypt(string(content), ck)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("build v2: encrypt: %w", err)
	}
	tags := nostr.Tags{{"p", receiver}}
	if !opts.Expiration.IsZero() {
		tags = append(tags, nostr.Tag{"expiration", strconv.FormatInt(opts.Expiration.Unix(), 10)})
	}
	evt := nostr.Event{
		PubKey:    trade.PublicKey(),
		CreatedAt: nostr.Timestamp(opts.now().Unix()),
		Kind:      mostro.KindDirect,
		Tags:      tags,
		Content:   ct,
	}
	if opts.PoW > 0 {
		if err := pow.Mine(ctx, &evt, opts.PoW, pow.Options{Workers: opts.PoWWorkers}); err != nil {
			return nostr.Event{}, fmt.Errorf("build v2: %w", err)
		}
	}
	if err := trade.Sign(&evt); err != nil {
		return nostr.Event{}, fmt.Errorf("build v2: %w", err)
	}
	return evt, nil
}

// Received is an opened protocol message.
type Received struct {
	// Version is 1 (gift wrap) or 2 (kind 14).
	Version Version
	// Message is the decoded message.
	Message mostro.Message
	// Tuple is the decoded tuple (signature, identity proof, raw message).
	Tuple mostro.Tuple
	// Sender is the trade key: the rumor author (v1) or event author (v2).
	Sender string
	// Identity is the identity key: the seal signer (v1), the proven
	// identity (v2), else Sender.
	Identity string
	// CreatedAt is the rumor (v1) or event (v2) created_at, the one
	// mostrod's 10-second freshness rule applies to.
	CreatedAt nostr.Timestamp
	// EventID is the outer event id.
	EventID string
	// InnerID is the rumor id (v1) or the event id (v2).
	InnerID string
	// RumorKind is the v1 rumor kind (1, or 14 from legacy simulators).
	RumorKind int
}

// OpenOptions tunes Open.
type OpenOptions struct {
	// AcceptRumorKind14 also accepts v1 rumors of kind 14 (the reference
	// test simulator replied with NIP-17 rumors; real Mostro uses kind 1).
	AcceptRumorKind14 bool
}

// Open reads a v1 (kind 1059) or v2 (kind 14) message addressed to
// receiver.
func Open(evt nostr.Event, receiver keys.Keys, opts OpenOptions) (Received, error) {
	switch evt.Kind {
	case mostro.KindGiftWrap:
		return OpenV1(evt, receiver, opts)
	case mostro.KindDirect:
		return OpenV2(evt, receiver)
	}
	return Received{}, fmt.Errorf("%w: event kind %d", ErrMalformed, evt.Kind)
}

// OpenV1 unwraps a v1 gift wrap (mostro-core unwrap_message). A malformed
// tuple signature string counts as absent, as mostro-core's v1 does; a
// well-formed one must verify against the rumor author.
func OpenV1(evt nostr.Event, receiver keys.Keys, opts OpenOptions) (Received, error) {
	o, err := giftwrap.Unwrap(evt, receiver)
	switch {
	case errors.Is(err, giftwrap.ErrNotForMe):
		return Received{}, ErrNotForMe
	case err != nil:
		return Received{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	kind := o.Rumor.Kind
	if kind != mostro.KindTextNote && !(opts.AcceptRumorKind14 && kind == mostro.KindDirect) {
		return Received{}, fmt.Errorf("%w: %d", ErrRumorKind, kind)
	}
	t, err := mostro.DecodeTuple([]byte(o.Rumor.Content))
	if err != nil {
		return Received{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t.Len != 2 {
		return Received{}, fmt.Errorf("%w: v1 tuple has %d elements", ErrMalformed, t.Len)
	}
	if t.Signature != "" {
		if len(t.Signature) != 128 {
			t.Signature = ""
		} else if !mostro.VerifyMessageSignature(o.Rumor.PubKey, t.Message, t.Signature) {
			return Received{}, fmt.Errorf("%w: tuple signature does not verify against the rumor author", ErrBadSignature)
		}
	}
	return Received{
		Version: V1, Message: t.Message, Tuple: t,
		Sender: o.Rumor.PubKey, Identity: o.Seal.PubKey,
		CreatedAt: o.Rumor.CreatedAt, EventID: evt.ID, InnerID: o.Rumor.ID, RumorKind: kind,
	}, nil
}

// OpenV2 opens a v2 kind-14 event (mostro-core unwrap_message_nip44): the
// event signature must verify, the tuple must have three elements, the
// trade signature and identity proof must verify when present.
func OpenV2(evt nostr.Event, receiver keys.Keys) (Received, error) {
	if evt.Kind != mostro.KindDirect {
		return Received{}, fmt.Errorf("%w: kind %d, want %d", ErrMalformed, evt.Kind, mostro.KindDirect)
	}
	if ok, _ := evt.CheckSignature(); !ok || !evt.CheckID() {
		return Received{}, fmt.Errorf("%w: event signature", ErrBadSignature)
	}
	ck, err := receiver.ConversationKey(evt.PubKey)
	if err != nil {
		return Received{}, ErrNotForMe
	}
	plain, err := nip44.Decrypt(evt.Content, ck)
	if err != nil {
		return Received{}, ErrNotForMe
	}
	t, err := mostro.DecodeTuple([]byte(plain))
	if err != nil {
		return Received{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if t.Len != 3 {
		return Received{}, fmt.Errorf("%w: v2 tuple has %d elements", ErrMalformed, t.Len)
	}
	if t.Signature != "" && !mostro.VerifyMessageSignature(evt.PubKey, t.Message, t.Signature) {
		return Received{}, fmt.Errorf("%w: trade signature does not verify against the event author", ErrBadSignature)
	}
	identity := evt.PubKey
	if t.Identity != nil {
		if !keys.ValidPubkey(t.Identity.Pubkey) || !mostro.VerifyIdentityProof(*t.Identity, evt.PubKey, t.Message) {
			return Received{}, fmt.Errorf("%w: identity proof", ErrBadSignature)
		}
		identity = t.Identity.Pubkey
	}
	return Received{
		Version: V2, Message: t.Message, Tuple: t,
		Sender: evt.PubKey, Identity: identity,
		CreatedAt: evt.CreatedAt, EventID: evt.ID, InnerID: evt.ID, RumorKind: 0,
	}, nil
}

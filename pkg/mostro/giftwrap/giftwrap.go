// Package giftwrap is NIP-59: a rumor (unsigned event) sealed (kind 13,
// NIP-44 to the recipient, signed by the sealer) and gift-wrapped (kind
// 1059, NIP-44 to the recipient under a fresh ephemeral key, p = recipient).
//
// Unlike go-nostr's nip59, Unwrap keeps both the rumor author and the seal
// signer (mostro-core's identity/trade split), tells "not for me" (the
// outer layer does not decrypt with our key) apart from "malformed"
// (everything after that), and the seal and wrap created_at are randomized
// up to two days back, as NIP-59 and rust-nostr do.
package giftwrap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
)

// MaxTweak is how far back seal and wrap timestamps may be randomized
// (NIP-59's two days). Subscriptions for gift wraps must reach back at
// least this far.
const MaxTweak = 2 * 24 * time.Hour

// ErrNotForMe means the wrap's outer layer does not decrypt with the
// recipient key: it is addressed to someone else.
var ErrNotForMe = errors.New("gift wrap not addressed to this key")

// ErrInvalidRumor is returned by Seal and Wrap for a rumor holding invalid
// UTF-8 (content or tags): JSON cannot carry it, so the recipient would
// compute another id and refuse the rumor.
var ErrInvalidRumor = errors.New("rumor content and tags must be valid UTF-8")

// ErrMalformed wraps every failure after the outer layer decrypted:
// a bad seal, a bad seal signature, an undecryptable or invalid rumor.
var ErrMalformed = errors.New("malformed gift wrap")

// Options tunes Wrap.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxTweak bounds the random backdating of seal and wrap created_at;
	// 0 means the default MaxTweak, negative means no backdating.
	MaxTweak time.Duration
	// Expiration, when non-zero, adds a NIP-40 expiration tag to the wrap.
	Expiration time.Time
	// PoW is the NIP-13 difficulty mined on the wrap (0 for none).
	PoW int
	// PoWWorkers is the number of mining goroutines (0: GOMAXPROCS).
	PoWWorkers int
	// Ephemeral, when set, is the wrap key instead of a fresh one (tests
	// and vectors only: reusing it links messages).
	Ephemeral keys.Keys
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) tweaked(now time.Time) nostr.Timestamp {
	maxTweak := o.MaxTweak
	if maxTweak == 0 {
		maxTweak = MaxTweak
	}
	ts := now.Unix()
	if maxTweak > 0 {
		ts -= rand.Int64N(int64(maxTweak/time.Second) + 1)
	}
	return nostr.Timestamp(ts)
}

// Seal encrypts the rumor (its Sig cleared, its ID computed) to recipient
// and returns the kind-13 seal signed by sealer, created_at backdated.
func Seal(rumor nostr.Event, sealer keys.Keys, recipient string, opts Options) (nostr.Event, error) {
	if !validUTF8(rumor) {
		return nostr.Event{}, fmt.Errorf("seal: %w", ErrInvalidRumor)
	}
	rumor.Sig = ""
	if rumor.Tags == nil {
		rumor.Tags = nostr.Tags{}
	}
	rumor.ID = rumor.GetID()
	ck, err := sealer.ConversationKey(recipient)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("seal: %w", err)
	}
	ct, err := nip44.Encrypt(rumor.String(), ck)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("seal: encrypt rumor: %w", err)
	}
	seal := nostr.Event{Kind: nostr.KindSeal, Content: ct, CreatedAt: opts.tweaked(opts.now()), Tags: nostr.Tags{}}
	if err := sealer.Sign(&seal); err != nil {
		return nostr.Event{}, fmt.Errorf("seal: %w", err)
	}
	return seal, nil
}

func validUTF8(ev nostr.Event) bool {
	if !utf8.ValidString(ev.Content) {
		return false
	}
	for _, t := range ev.Tags {
		for _, v := range t {
			if !utf8.ValidString(v) {
				return false
			}
		}
	}
	return true
}

// WrapSeal gift-wraps a seal to recipient under a fresh ephemeral key,
// with tags [expiration?, p], backdated created_at and optional PoW.
func WrapSeal(ctx context.Context, seal nostr.Event, recipient string, opts Options) (nostr.Event, error) {
	eph := opts.Ephemeral
	if eph.IsZero() {
		eph = keys.Generate()
	}
	ck, err := eph.ConversationKey(recipient)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("gift wrap: %w", err)
	}
	ct, err := nip44.Encrypt(seal.String(), ck)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("gift wrap: encrypt seal: %w", err)
	}
	tags := make(nostr.Tags, 0, 3)
	if !opts.Expiration.IsZero() {
		tags = append(tags, nostr.Tag{"expiration", strconv.FormatInt(opts.Expiration.Unix(), 10)})
	}
	tags = append(tags, nostr.Tag{"p", recipient})
	wrap := nostr.Event{Kind: nostr.KindGiftWrap, Content: ct, CreatedAt: opts.tweaked(opts.now()), Tags: tags}
	if opts.PoW > 0 {
		wrap.PubKey = eph.PublicKey()
		if err := pow.Mine(ctx, &wrap, opts.PoW, pow.Options{Workers: opts.PoWWorkers}); err != nil {
			return nostr.Event{}, fmt.Errorf("gift wrap: %w", err)
		}
	}
	if err := eph.Sign(&wrap); err != nil {
		return nostr.Event{}, fmt.Errorf("gift wrap: %w", err)
	}
	return wrap, nil
}

// Wrap seals rumor with sealer and gift-wraps it to recipient. The rumor is
// used as given (set its PubKey, Kind, CreatedAt, Tags and Content first).
func Wrap(ctx context.Context, rumor nostr.Event, sealer keys.Keys, recipient string, opts Options) (nostr.Event, error) {
	seal, err := Seal(rumor, sealer, recipient, opts)
	if err != nil {
		return nostr.Event{}, err
	}
	return WrapSeal(ctx, seal, recipient, opts)
}

// Opened is an unwrapped gift wrap.
type Opened struct {
	// Wrap is the outer kind-1059 event.
	Wrap nostr.Event
	// Seal is the kind-13 seal; its signature was verified.
	Seal nostr.Event
	// Rumor is the inner unsigned event, its ID recomputed.
	Rumor nostr.Event
}

// RumorAuthor is the rumor's pubkey (mostro-core: the sender's trade key).
func (o Opened) RumorAuthor() string { return o.Rumor.PubKey }

// SealSigner is the seal's pubkey (mostro-core: the sender's identity key).
func (o Opened) SealSigner() string { return o.Seal.PubKey }

// Unwrap opens a gift wrap addressed to recipient. It returns ErrNotForMe
// when the outer layer does not decrypt with recipient's key, and an error
// wrapping ErrMalformed for anything wrong after that (seal not JSON or not
// kind 13, bad seal signature, rumor not decryptable, not JSON, or carrying
// an id that is not its own). It does not verify the wrap's own signature
// (an ephemeral key proves nothing; relays check it) nor compare rumor
// author and seal signer: callers apply their protocol's rule.
func Unwrap(wrap nostr.Event, recipient keys.Keys) (Opened, error) {
	if wrap.Kind != nostr.KindGiftWrap {
		return Opened{}, fmt.Errorf("%w: kind %d, want %d", ErrMalformed, wrap.Kind, nostr.KindGiftWrap)
	}
	ck, err := recipient.ConversationKey(wrap.PubKey)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: wrap pubkey: %w", ErrNotForMe, err)
	}
	sealJSON, err := nip44.Decrypt(wrap.Content, ck)
	if err != nil {
		return Opened{}, ErrNotForMe
	}
	var seal nostr.Event
	if err := json.Unmarshal([]byte(sealJSON), &seal); err != nil {
		return Opened{}, fmt.Errorf("%w: seal is not an event: %w", ErrMalformed, err)
	}
	if seal.Kind != nostr.KindSeal {
		return Opened{}, fmt.Errorf("%w: seal kind %d", ErrMalformed, seal.Kind)
	}
	if ok, _ := seal.CheckSignature(); !ok {
		return Opened{}, fmt.Errorf("%w: bad seal signature", ErrMalformed)
	}
	seal.ID = seal.GetID()
	ck2, err := recipient.ConversationKey(seal.PubKey)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: seal pubkey: %w", ErrMalformed, err)
	}
	rumorJSON, err := nip44.Decrypt(seal.Content, ck2)
	if err != nil {
		return Opened{}, fmt.Errorf("%w: rumor does not decrypt: %w", ErrMalformed, err)
	}
	var rumor nostr.Event
	if err := json.Unmarshal([]byte(rumorJSON), &rumor); err != nil {
		return Opened{}, fmt.Errorf("%w: rumor is not an event: %w", ErrMalformed, err)
	}
	if !keys.ValidPubkey(rumor.PubKey) {
		return Opened{}, fmt.Errorf("%w: rumor pubkey", ErrMalformed)
	}
	if rumor.Tags == nil {
		rumor.Tags = nostr.Tags{}
	}
	id := rumor.GetID()
	if rumor.ID != "" && rumor.ID != id {
		return Opened{}, fmt.Errorf("%w: rumor id does not match its content", ErrMalformed)
	}
	rumor.ID = id
	return Opened{Wrap: wrap, Seal: seal, Rumor: rumor}, nil
}

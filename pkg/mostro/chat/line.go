package chat

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// Form is the wire form of a chat line.
type Form int

// The two forms.
const (
	// FormV2 is kind 14 signed by K_sign, p = pub(K_conv), NIP-44
	// self-encryption under K_conv.
	FormV2 Form = 2
	// FormV1 is the legacy "simplified NIP-59": kind 1059 by an ephemeral
	// key, p = the shared key's pubkey, no seal.
	FormV1 Form = 1
)

// String names the form for logs and metric labels.
func (f Form) String() string {
	switch f {
	case FormV2:
		return "v2"
	case FormV1:
		return "v1"
	}
	return fmt.Sprintf("form(%d)", int(f))
}

// MaxLegacyTweak bounds the backdating of legacy (v1) outer events.
const MaxLegacyTweak = 2 * 24 * time.Hour

// ErrEmptyText is returned when building a line with empty or blank text.
var ErrEmptyText = errors.New("refusing to build a chat line with empty content")

// ErrInvalidText is returned when building a line whose text is not valid
// UTF-8: JSON cannot carry it, so the receiver would compute another inner
// id and refuse the line.
var ErrInvalidText = errors.New("refusing to build a chat line whose text is not valid UTF-8")

// NewInner builds the inner event of a line: kind 1, the text, created_at,
// signed by the sender's own key (Serbero's key or a party's trade key).
func NewInner(sender keys.Keys, text string, createdAt time.Time) (nostr.Event, error) {
	if strings.TrimSpace(text) == "" {
		return nostr.Event{}, ErrEmptyText
	}
	if !utf8.ValidString(text) {
		return nostr.Event{}, ErrInvalidText
	}
	inner := nostr.Event{
		CreatedAt: nostr.Timestamp(createdAt.Unix()),
		Kind:      mostro.KindTextNote,
		Tags:      nostr.Tags{},
		Content:   text,
	}
	if err := sender.Sign(&inner); err != nil {
		return nostr.Event{}, fmt.Errorf("chat inner event: %w", err)
	}
	return inner, nil
}

// WrapV2 puts a signed inner event into a v2 outer event: kind 14 authored
// and signed by K_sign, exactly one p = pub(K_conv), created_at as given,
// content NIP-44(conv(K_conv, pub(K_conv)), inner JSON).
func WrapV2(ch Channel, inner nostr.Event, createdAt time.Time) (nostr.Event, error) {
	ck, err := ch.ConvConversationKey()
	if err != nil {
		return nostr.Event{}, fmt.Errorf("chat v2: %w", err)
	}
	ct, err := nip44.Encrypt(inner.String(), ck)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("chat v2: encrypt: %w", err)
	}
	outer := nostr.Event{
		CreatedAt: nostr.Timestamp(createdAt.Unix()),
		Kind:      mostro.KindDirect,
		Tags:      nostr.Tags{{"p", ch.Conv.PublicKey()}},
		Content:   ct,
	}
	if err := ch.Sign.Sign(&outer); err != nil {
		return nostr.Event{}, fmt.Errorf("chat v2: %w", err)
	}
	return outer, nil
}

// WrapV1 puts a signed inner event into a legacy outer event: kind 1059
// signed by a fresh ephemeral key, one p = the shared pubkey, created_at
// backdated up to two days from now, content NIP-44(conv(ephemeral, shared
// pubkey), inner JSON).
func WrapV1(ch Channel, inner nostr.Event, now time.Time) (nostr.Event, error) {
	eph := keys.Generate()
	ck, err := eph.ConversationKey(ch.Shared.PublicKey())
	if err != nil {
		return nostr.Event{}, fmt.Errorf("chat v1: %w", err)
	}
	ct, err := nip44.Encrypt(inner.String(), ck)
	if err != nil {
		return nostr.Event{}, fmt.Errorf("chat v1: encrypt: %w", err)
	}
	outer := nostr.Event{
		CreatedAt: nostr.Timestamp(now.Unix() - rand.Int64N(int64(MaxLegacyTweak/time.Second)+1)),
		Kind:      mostro.KindGiftWrap,
		Tags:      nostr.Tags{{"p", ch.Shared.PublicKey()}},
		Content:   ct,
	}
	if err := eph.Sign(&outer); err != nil {
		return nostr.Event{}, fmt.Errorf("chat v1: %w", err)
	}
	return outer, nil
}

// BuildV2 builds an outbound line in v2 form from sender (whose own key is
// one end of ch), stamped now. It returns the outer event to publish and
// the inner event (its id is the line's durable identity).
func BuildV2(ch Channel, sender keys.Keys, text string, now time.Time) (outer, inner nostr.Event, err error) {
	if inner, err = NewInner(sender, text, now); err != nil {
		return nostr.Event{}, nostr.Event{}, err
	}
	if outer, err = WrapV2(ch, inner, now); err != nil {
		return nostr.Event{}, nostr.Event{}, err
	}
	return outer, inner, nil
}

// BuildV1 builds an outbound line in the legacy form.
func BuildV1(ch Channel, sender keys.Keys, text string, now time.Time) (outer, inner nostr.Event, err error) {
	if inner, err = NewInner(sender, text, now); err != nil {
		return nostr.Event{}, nostr.Event{}, err
	}
	if outer, err = WrapV1(ch, inner, now); err != nil {
		return nostr.Event{}, nostr.Event{}, err
	}
	return outer, inner, nil
}

// Line is a validated inbound chat line.
type Line struct {
	// Form is the wire form it came in.
	Form Form
	// Outer is the event as received.
	Outer nostr.Event
	// Inner is the decrypted, verified kind-1 event.
	Inner nostr.Event
}

// Author is the inner signer (the party's trade key).
func (l Line) Author() string { return l.Inner.PubKey }

// Text is the line's content.
func (l Line) Text() string { return l.Inner.Content }

// Rejection is the typed reason a line was rejected. Every sentinel below
// is a *Rejection; errors from Validate wrap one, so both errors.Is(err,
// ErrForgedSigner) and ReasonOf(err) work.
type Rejection struct {
	reason string
}

// Error describes the rejection.
func (r *Rejection) Error() string { return "chat line rejected: " + r.reason }

// Reason is a short snake_case label, stable for metrics.
func (r *Rejection) Reason() string { return r.reason }

// The rejection reasons, in validation order.
var (
	ErrWrongKind          = &Rejection{"wrong_kind"}          // neither kind 14 nor 1059
	ErrWrongAuthor        = &Rejection{"wrong_author"}        // v2 author is not pub(K_sign)
	ErrExtraPTag          = &Rejection{"extra_p_tag"}         // more than one p tag
	ErrWrongRecipient     = &Rejection{"wrong_p_tag"}         // the p tag is missing or not the channel address
	ErrFutureDated        = &Rejection{"future_dated"}        // outer or inner created_at beyond now + skew
	ErrOversized          = &Rejection{"oversized"}           // event JSON above MaxSize
	ErrBadSignature       = &Rejection{"bad_signature"}       // outer id or signature invalid
	ErrDecrypt            = &Rejection{"decrypt_failed"}      // content does not decrypt under the channel key
	ErrMalformedInner     = &Rejection{"malformed_inner"}     // decrypted content is not an event
	ErrBadInnerSignature  = &Rejection{"bad_inner_signature"} // inner id or signature invalid
	ErrOwnLine            = &Rejection{"own_line"}            // signed by our own key: an echo of what we sent
	ErrForgedSigner       = &Rejection{"forged_signer"}       // inner signer not in the allowed set
	ErrInnerKind          = &Rejection{"inner_kind"}          // inner event is not kind 1
	ErrTimestampMismatch  = &Rejection{"timestamp_mismatch"}  // v2 |inner − outer| created_at beyond skew
	errSentinelsForReason = []*Rejection{ErrWrongKind, ErrWrongAuthor, ErrExtraPTag, ErrWrongRecipient, ErrFutureDated, ErrOversized, ErrBadSignature, ErrDecrypt, ErrMalformedInner, ErrBadInnerSignature, ErrOwnLine, ErrForgedSigner, ErrInnerKind, ErrTimestampMismatch}
)

// Reasons lists every rejection label (for pre-registering metric series).
func Reasons() []string {
	out := make([]string, len(errSentinelsForReason))
	for i, r := range errSentinelsForReason {
		out[i] = r.reason
	}
	return out
}

// ReasonOf returns the rejection label of an error from Validate, or "" if
// it is not a rejection.
func ReasonOf(err error) string {
	var r *Rejection
	if errors.As(err, &r) {
		return r.reason
	}
	return ""
}

func reject(r *Rejection, format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{r}, args...)...)
}

// Defaults of Validator.
const (
	MaxSize      = 64 * 1024
	MaxClockSkew = 60 * time.Second
)

// Validator runs the stateless steps of the protocol's mandatory validation
// order on one inbound event. The stateful steps (outer-id memory,
// per-channel rate limit, durable inner-id dedup, cursor) belong to the
// caller, the relay gateway: it checks the outer-id memory before calling
// Validate, and the inner-id dedup and the rate limit after, so that only
// a verified sender's lines are counted against it.
type Validator struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxSize is the largest accepted event JSON; 0 means MaxSize.
	MaxSize int
	// MaxSkew bounds how far in the future created_at may be and, on v2,
	// |inner − outer| created_at; 0 means MaxClockSkew.
	MaxSkew time.Duration
}

// Validate checks evt as a line of channel ch whose inner signer must be
// one of allowed (a dispute channel: that party's trade key). A line signed
// by ch.Own is ErrOwnLine (an echo of our own send, not a forgery). Order:
// kind; author == pub(K_sign) (v2); exactly one p == channel address;
// created_at ≤ now + skew; size; outer signature; decrypt; inner
// signature; inner signer; inner kind 1; inner created_at ≤ now + skew and,
// on v2, |inner − outer| ≤ skew.
func (v Validator) Validate(evt nostr.Event, ch Channel, allowed ...string) (Line, error) {
	now := time.Now()
	if v.Now != nil {
		now = v.Now()
	}
	skew := v.MaxSkew
	if skew == 0 {
		skew = MaxClockSkew
	}
	maxSize := v.MaxSize
	if maxSize == 0 {
		maxSize = MaxSize
	}
	var form Form
	var address string
	switch evt.Kind {
	case mostro.KindDirect:
		form, address = FormV2, ch.Conv.PublicKey()
		if evt.PubKey != ch.Sign.PublicKey() {
			return Line{}, reject(ErrWrongAuthor, "author %s", evt.PubKey)
		}
	case mostro.KindGiftWrap:
		form, address = FormV1, ch.Shared.PublicKey()
	default:
		return Line{}, reject(ErrWrongKind, "kind %d", evt.Kind)
	}
	pTags := 0
	pOK := false
	for _, t := range evt.Tags {
		if len(t) >= 1 && t[0] == "p" {
			pTags++
			pOK = len(t) >= 2 && t[1] == address
		}
	}
	switch {
	case pTags > 1:
		return Line{}, reject(ErrExtraPTag, "%d p tags", pTags)
	case !pOK:
		return Line{}, reject(ErrWrongRecipient, "p tag is not the channel address")
	}
	limit := nostr.Timestamp(now.Add(skew).Unix())
	if evt.CreatedAt > limit {
		return Line{}, reject(ErrFutureDated, "outer created_at %d beyond %d", evt.CreatedAt, limit)
	}
	if len(evt.Content) > maxSize || len(evt.String()) > maxSize {
		return Line{}, reject(ErrOversized, "above %d bytes", maxSize)
	}
	if !evt.CheckID() {
		return Line{}, reject(ErrBadSignature, "id does not match")
	}
	if ok, _ := evt.CheckSignature(); !ok {
		return Line{}, reject(ErrBadSignature, "signature does not verify")
	}
	var ck [32]byte
	var err error
	if form == FormV2 {
		ck, err = ch.ConvConversationKey()
	} else {
		ck, err = ch.Shared.ConversationKey(evt.PubKey)
	}
	if err != nil {
		return Line{}, reject(ErrDecrypt, "%v", err)
	}
	plain, err := nip44.Decrypt(evt.Content, ck)
	if err != nil {
		return Line{}, reject(ErrDecrypt, "%v", err)
	}
	var inner nostr.Event
	if err := json.Unmarshal([]byte(plain), &inner); err != nil {
		return Line{}, reject(ErrMalformedInner, "%v", err)
	}
	if !keys.ValidPubkey(inner.PubKey) || !inner.CheckID() {
		return Line{}, reject(ErrBadInnerSignature, "inner id does not match")
	}
	if ok, _ := inner.CheckSignature(); !ok {
		return Line{}, reject(ErrBadInnerSignature, "inner signature does not verify")
	}
	if inner.PubKey == ch.Own {
		return Line{}, reject(ErrOwnLine, "signed by our own key")
	}
	permitted := false
	for _, a := range allowed {
		if a == inner.PubKey {
			permitted = true
			break
		}
	}
	if !permitted {
		return Line{}, reject(ErrForgedSigner, "inner signer %s not allowed", inner.PubKey)
	}
	if inner.Kind != mostro.KindTextNote {
		return Line{}, reject(ErrInnerKind, "kind %d", inner.Kind)
	}
	if inner.CreatedAt > limit {
		return Line{}, reject(ErrFutureDated, "inner created_at %d beyond %d", inner.CreatedAt, limit)
	}
	if form == FormV2 {
		d := int64(inner.CreatedAt - evt.CreatedAt)
		if d < 0 {
			d = -d
		}
		if time.Duration(d)*time.Second > skew {
			return Line{}, reject(ErrTimestampMismatch, "inner and outer created_at differ by %d s", d)
		}
	}
	return Line{Form: form, Outer: evt, Inner: inner}, nil
}

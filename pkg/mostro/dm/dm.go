// Package dm is NIP-17 private direct messages, the way Serbero notifies
// solvers: an unsigned rumor of kind 14 with one p tag naming the
// recipient and the plain-text body as content, sealed (kind 13) by the
// sender's key and gift-wrapped (kind 1059) by a fresh key to the recipient
// only (no copy to self). The result unwraps with go-nostr's own
// nip59.GiftUnwrap and any NIP-17 client.
package dm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// ErrNotDM means the unwrapped rumor is not a NIP-17 message (not kind 14,
// or its author is not the seal signer).
var ErrNotDM = errors.New("not a NIP-17 direct message")

// Options tunes Wrap.
type Options struct {
	// Now is the clock; nil means time.Now. The rumor's created_at is now;
	// seal and wrap are backdated up to two days.
	Now func() time.Time
	// Tags are extra rumor tags after the p tag (e.g. a subject).
	Tags nostr.Tags
}

// Wrap builds the gift wrap of a DM from sender to recipient. A body that
// is not valid UTF-8 is refused (giftwrap.ErrInvalidRumor).
func Wrap(sender keys.Keys, recipient string, body string, opts Options) (nostr.Event, error) {
	if !keys.ValidPubkey(recipient) {
		return nostr.Event{}, fmt.Errorf("dm: recipient: %w", keys.ErrInvalidPubkey)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	tags := make(nostr.Tags, 0, 1+len(opts.Tags))
	tags = append(tags, nostr.Tag{"p", recipient})
	tags = append(tags, opts.Tags...)
	rumor := nostr.Event{
		PubKey:    sender.PublicKey(),
		CreatedAt: nostr.Timestamp(now().Unix()),
		Kind:      mostro.KindDirect,
		Tags:      tags,
		Content:   body,
	}
	return giftwrap.Wrap(context.Background(), rumor, sender, recipient, giftwrap.Options{Now: now})
}

// Message is an unwrapped DM.
type Message struct {
	// From is the sender (rumor author == seal signer).
	From string
	// Body is the plain-text content.
	Body string
	// Rumor is the inner kind-14 rumor (ID computed).
	Rumor nostr.Event
	// WrapID is the outer gift wrap's id.
	WrapID string
}

// Unwrap opens a DM gift wrap addressed to recipient. Errors:
// giftwrap.ErrNotForMe, giftwrap.ErrMalformed, ErrNotDM.
func Unwrap(wrap nostr.Event, recipient keys.Keys) (Message, error) {
	o, err := giftwrap.Unwrap(wrap, recipient)
	if err != nil {
		return Message{}, err
	}
	if o.Rumor.Kind != mostro.KindDirect {
		return Message{}, fmt.Errorf("%w: rumor kind %d", ErrNotDM, o.Rumor.Kind)
	}
	if o.Rumor.PubKey != o.Seal.PubKey {
		return Message{}, fmt.Errorf("%w: rumor author is not the seal signer", ErrNotDM)
	}
	return Message{From: o.Rumor.PubKey, Body: o.Rumor.Content, Rumor: o.Rumor, WrapID: wrap.ID}, nil
}

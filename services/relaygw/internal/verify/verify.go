// Package verify checks what a relay delivered: a relay may deliver
// anything (wrong kind, forged author, bad id, bad signature), so every
// event is checked here before it is trusted.
package verify

import (
	"strings"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
)

// Reason is why an event was refused (a metric label value).
type Reason string

// The refusal reasons.
const (
	OK           Reason = ""
	WrongKind    Reason = "wrong_kind"
	WrongAuthor  Reason = "wrong_author"
	BadID        Reason = "bad_id"
	BadSignature Reason = "bad_signature"
	Malformed    Reason = "malformed"
	// Unstorable: text Postgres cannot hold (a NUL byte or invalid
	// UTF-8). Stored anyway, it would fail every retry and stall the
	// subscription it arrived on.
	Unstorable Reason = "unstorable_text"
	// The size bounds of stored events (see Limits): a value past them
	// is refused before it is stored, rather than failing (or bloating)
	// every consumer downstream.
	OversizedDTag    Reason = "oversized_d_tag"
	TooManyTags      Reason = "too_many_tags"
	OversizedTag     Reason = "oversized_tag"
	OversizedContent Reason = "oversized_content"
)

// Limits are the size bounds of the events relaygw stores (dispute and
// info events). Mostro's own events are far below them: a dispute event
// has seven short tags, a d tag of 36 characters (a UUID) and empty
// content; an info event has a few dozen short tags. See
// docs/relaygw.md#bounds.
const (
	// MaxDTag bounds the d tag value, in bytes. It becomes the dispute id
	// downstream, a key in B-tree indexes (whose rows cannot exceed about
	// 2.7 kB).
	MaxDTag = 128
	// MaxTags bounds the number of tags.
	MaxTags = 128
	// MaxTagValues bounds the values of one tag (its name included).
	MaxTagValues = 32
	// MaxTagValue bounds one tag value, in bytes.
	MaxTagValue = 1024
	// MaxTagsBytes bounds all tag values together, in bytes.
	MaxTagsBytes = 16 * 1024
	// MaxContent bounds the content, in bytes.
	MaxContent = 64 * 1024
)

// Event checks kind, author, id and signature, cheapest first.
func Event(ev *nostr.Event, kind int, author string) Reason {
	if ev.Kind != kind {
		return WrongKind
	}
	if ev.PubKey != author {
		return WrongAuthor
	}
	if !ev.CheckID() {
		return BadID
	}
	if ok, err := ev.CheckSignature(); err != nil || !ok {
		return BadSignature
	}
	return OK
}

// StorableText reports whether s can be stored as Postgres text and jsonb:
// valid UTF-8 without NUL bytes.
func StorableText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// Storable checks what relaygw stores of an event: the size bounds
// (Limits) first, then that the content and every tag value are
// StorableText.
func Storable(ev *nostr.Event) Reason {
	if r := Bounded(ev); r != OK {
		return r
	}
	if !StorableText(ev.Content) {
		return Unstorable
	}
	for _, t := range ev.Tags {
		for _, v := range t {
			if !StorableText(v) {
				return Unstorable
			}
		}
	}
	return OK
}

// Bounded checks an event against Limits.
func Bounded(ev *nostr.Event) Reason {
	if len(ev.Content) > MaxContent {
		return OversizedContent
	}
	if len(ev.Tags) > MaxTags {
		return TooManyTags
	}
	total := 0
	for _, t := range ev.Tags {
		if len(t) >= 2 && t[0] == "d" && len(t[1]) > MaxDTag {
			return OversizedDTag
		}
		if len(t) > MaxTagValues {
			return OversizedTag
		}
		for _, v := range t {
			if len(v) > MaxTagValue {
				return OversizedTag
			}
			total += len(v)
		}
	}
	if total > MaxTagsBytes {
		return OversizedTag
	}
	return OK
}

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

// Storable checks an event's content and every tag value with
// StorableText.
func Storable(ev *nostr.Event) Reason {
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

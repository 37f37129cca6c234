// Package verify checks what a relay delivered: a relay may deliver
// anything (wrong kind, forged author, bad id, bad signature), so every
// event is checked here before it is trusted.
package verify

import "github.com/nbd-wtf/go-nostr"

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

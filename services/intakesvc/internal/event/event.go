// Package event turns a kind 38386 dispute event streamed by relaygw into a
// Revision: it re-verifies what relaygw already verified (kind, author = the
// configured Mostro pubkey, id = hash of the content, Schnorr signature;
// defense in depth, docs/intake.md#the-intake-stream) and reads the tags intakesvc routes
// on, by name and never by position.
package event

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/nbd-wtf/go-nostr"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// KindDispute is Mostro's dispute event kind.
const KindDispute = 38386

// Initiator roles recorded in disputes.initiator_role.
const (
	InitiatorBuyer   = "buyer"
	InitiatorSeller  = "seller"
	InitiatorUnknown = "unknown"
)

// Rejection reasons (the reason label of the rejected-events counter).
const (
	ReasonWrongKind    = "wrong_kind"
	ReasonForgedAuthor = "forged_author"
	ReasonBadID        = "bad_id"
	ReasonBadSignature = "bad_signature"
	ReasonMissingD     = "missing_d"
	ReasonMissingS     = "missing_s"
)

// RejectError says why an event cannot be used. It is never retried.
type RejectError struct {
	Reason string
	Detail string
}

// Error describes the rejection.
func (e *RejectError) Error() string {
	if e.Detail == "" {
		return "dispute event rejected: " + e.Reason
	}
	return "dispute event rejected: " + e.Reason + ": " + e.Detail
}

// Revision is one verified revision of a dispute.
type Revision struct {
	// Cursor is relaygw's position of the event.
	Cursor int64
	// EventID is the event id, hex.
	EventID string
	// Pubkey is the author (the Mostro node), hex.
	Pubkey string
	// CreatedAt is the event's created_at, unix seconds.
	CreatedAt int64
	// DisputeID is the first d tag.
	DisputeID string
	// Status is the first lowercase s tag.
	Status lifecycle.Status
	// Initiator is buyer, seller or unknown (missing or unrecognised tag).
	Initiator string
	// InitiatorRaw is the initiator tag as sent ("" when missing).
	InitiatorRaw string
	// OpenedAt is the dispute's open time from the created_at (or
	// published_at) tag; 0 when absent or unparseable. Never used for
	// ordering.
	OpenedAt int64
}

// Newer reports whether revision (aCreated, aID) supersedes (bCreated, bID):
// a higher created_at wins, and on a tie the lower event id wins (the rule
// for addressable events).
func Newer(aCreated int64, aID string, bCreated int64, bID string) bool {
	if aCreated != bCreated {
		return aCreated > bCreated
	}
	return aID < bID
}

// Parse verifies ev (kind and sig as relaygw reported them) and reads its
// tags. A *RejectError says why an event is unusable.
func Parse(ev *relaygwv1.DisputeEvent, kind int, sig, mostroPubkey string) (Revision, error) {
	if err := Verify(ev, kind, sig, mostroPubkey); err != nil {
		return Revision{}, err
	}
	rev := Revision{
		Cursor:    ev.GetCursor(),
		EventID:   ev.GetEventId(),
		Pubkey:    ev.GetPubkey(),
		CreatedAt: ev.GetCreatedAt().GetSeconds(),
	}
	tags := ev.GetTags()
	d, ok := first(tags, "d")
	if !ok || d == "" {
		return rev, &RejectError{Reason: ReasonMissingD, Detail: "missing `d` tag"}
	}
	rev.DisputeID = d
	s, ok := first(tags, "s")
	if !ok {
		return rev, &RejectError{Reason: ReasonMissingS, Detail: "dispute event has no `s` tag — cannot route"}
	}
	rev.Status = lifecycle.Status(s)
	rev.InitiatorRaw, _ = first(tags, "initiator")
	switch rev.InitiatorRaw {
	case InitiatorBuyer, InitiatorSeller, InitiatorUnknown:
		rev.Initiator = rev.InitiatorRaw
	default:
		rev.Initiator = InitiatorUnknown
	}
	for _, name := range []string{"created_at", "published_at"} {
		if v, ok := first(tags, name); ok {
			if n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64); err == nil && n > 0 {
				rev.OpenedAt = n
				break
			}
		}
	}
	return rev, nil
}

// Verify checks kind, author, id and signature; an event without a
// signature is refused.
func Verify(ev *relaygwv1.DisputeEvent, kind int, sig, mostroPubkey string) error {
	if kind != KindDispute {
		return &RejectError{Reason: ReasonWrongKind, Detail: fmt.Sprintf("kind %d", kind)}
	}
	if ev.GetPubkey() == "" || !strings.EqualFold(ev.GetPubkey(), mostroPubkey) {
		return &RejectError{Reason: ReasonForgedAuthor, Detail: "author is not the configured Mostro pubkey"}
	}
	ne := nostr.Event{
		ID:        ev.GetEventId(),
		PubKey:    strings.ToLower(ev.GetPubkey()),
		CreatedAt: nostr.Timestamp(ev.GetCreatedAt().GetSeconds()),
		Kind:      kind,
		Tags:      make(nostr.Tags, 0, len(ev.GetTags())),
		Content:   ev.GetContent(),
		Sig:       sig,
	}
	for _, t := range ev.GetTags() {
		ne.Tags = append(ne.Tags, nostr.Tag(t.GetValues()))
	}
	if !ne.CheckID() {
		return &RejectError{Reason: ReasonBadID, Detail: "id does not match the event"}
	}
	if sig == "" {
		return &RejectError{Reason: ReasonBadSignature, Detail: "no signature"}
	}
	ok, err := ne.CheckSignature()
	if err != nil || !ok {
		return &RejectError{Reason: ReasonBadSignature, Detail: "signature does not verify"}
	}
	return nil
}

// first returns the value of the first tag named name (exact, case
// sensitive: an uppercase S is not s).
func first(tags []*relaygwv1.Tag, name string) (string, bool) {
	for _, t := range tags {
		v := t.GetValues()
		if len(v) >= 2 && v[0] == name {
			return v[1], true
		}
	}
	return "", false
}

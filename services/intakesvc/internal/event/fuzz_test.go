package event_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/services/intakesvc/internal/event"
)

// fuzzSK signs every fuzzed event (a fixed key: the corpus stays valid).
const fuzzSK = "0000000000000000000000000000000000000000000000000000000000000003"

// FuzzParse feeds Parse events with arbitrary tags and content, signed by
// the Mostro key (so the tag reading is reached) or tampered after
// signing. Properties: Parse never panics; every refusal is a
// *RejectError with a known reason; an accepted event's Revision is what
// its tags say (the first d and s tags, an initiator in the three roles,
// the event's own id, author and time); a tampered event is refused as
// bad_id or bad_signature.
func FuzzParse(f *testing.F) {
	f.Add("d-1", "initiated", "buyer", "1755799990", "", false, int64(1755800000))
	f.Add("3f5c0c64-38ba-4e2a-9d6c-2f3b1c2d4e5f", "in-progress", "seller", "", "y", false, int64(1))
	f.Add("d", "settled", "", "not-a-number", "z", false, int64(0))
	f.Add("", "initiated", "buyer", "", "", false, int64(5))
	f.Add("d", "", "mallory", "-1", "S", true, int64(9))
	f.Add("nul\x00id", "seller-refunded", "unknown", "  42 ", "p", true, int64(1<<40))
	pk, err := nostr.GetPublicKey(fuzzSK)
	if err != nil {
		f.Fatal(err)
	}
	reasons := []string{event.ReasonWrongKind, event.ReasonForgedAuthor, event.ReasonBadID, event.ReasonBadSignature,
		event.ReasonMissingD, event.ReasonMissingS}
	f.Fuzz(func(t *testing.T, d, s, initiator, openedAt, extra string, tamper bool, createdAt int64) {
		tags := nostr.Tags{}
		if d != "" {
			tags = append(tags, nostr.Tag{"d", d})
		}
		if extra != "" {
			tags = append(tags, nostr.Tag{extra, d, s}, nostr.Tag{extra})
		}
		if s != "" {
			tags = append(tags, nostr.Tag{"s", s})
		}
		tags = append(tags, nostr.Tag{"initiator", initiator}, nostr.Tag{"created_at", openedAt}, nostr.Tag{"s", "second"})
		ev := nostr.Event{Kind: event.KindDispute, CreatedAt: nostr.Timestamp(createdAt), Tags: tags, Content: extra}
		if err := ev.Sign(fuzzSK); err != nil {
			t.Fatalf("sign: %v", err) // a fixed valid key: cannot fail
		}
		pe := toProto(ev)
		if tamper {
			pe.Content += "!"
		}
		rev, err := event.Parse(pe, event.KindDispute, ev.Sig, pk)
		if err != nil {
			var rej *event.RejectError
			if !errors.As(err, &rej) || !slices.Contains(reasons, rej.Reason) {
				t.Fatalf("refusal %v is not a RejectError with a known reason", err)
			}
			if tamper && rej.Reason != event.ReasonBadID {
				t.Fatalf("tampered event refused as %s, want bad_id", rej.Reason)
			}
			return
		}
		if tamper {
			t.Fatal("a tampered event was accepted")
		}
		first := func(name string) (string, bool) {
			for _, tg := range ev.Tags {
				if len(tg) >= 2 && tg[0] == name {
					return tg[1], true
				}
			}
			return "", false
		}
		wantD, _ := first("d")
		wantS, _ := first("s")
		switch {
		case rev.DisputeID == "" || rev.DisputeID != wantD:
			t.Fatalf("dispute id %q, want the first d tag %q", rev.DisputeID, wantD)
		case string(rev.Status) != wantS:
			t.Fatalf("status %q, want the first s tag %q", rev.Status, wantS)
		case !slices.Contains([]string{event.InitiatorBuyer, event.InitiatorSeller, event.InitiatorUnknown}, rev.Initiator):
			t.Fatalf("initiator %q", rev.Initiator)
		case rev.InitiatorRaw != initiator:
			t.Fatalf("raw initiator %q, want %q", rev.InitiatorRaw, initiator)
		case rev.EventID != ev.ID || rev.Pubkey != pk || rev.CreatedAt != int64(ev.CreatedAt):
			t.Fatalf("revision %+v does not describe event %s", rev, ev.ID)
		case rev.OpenedAt < 0:
			t.Fatalf("opened_at %d", rev.OpenedAt)
		}
	})
}

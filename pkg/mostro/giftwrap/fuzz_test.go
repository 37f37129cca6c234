package giftwrap_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// Fixed keys: fuzzing must be reproducible.
var (
	fuzzRecipient = keys.MustParse("e108399bd8424357a710b606ae0c13166d853d327e47a6e5e038197346bdbf45")
	fuzzSender    = keys.MustParse("0beebd062ec8735f4243466049d7747ef5d6594ee838de147f8aab842b15e273")
	fuzzEphemeral = keys.MustParse("4f02eac59266002db5801adc5270700ca69d5b8f761d8732fab2fbf233c90cbd")
)

// The modes of FuzzUnwrap.
const (
	modeWrapJSON  = iota // the input is a whole gift wrap as a relay would deliver it
	modeSealJSON         // the input is the plaintext of the outer layer (the seal)
	modeRumorJSON        // the input is the plaintext of a validly signed seal (the rumor)
	modeRoundTrip        // the input is a rumor's content: Wrap then Unwrap
	modes
)

func seal(t testing.TB, plaintext string) (nostr.Event, bool) {
	ck, err := fuzzSender.ConversationKey(fuzzRecipient.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := nip44.Encrypt(plaintext, ck)
	if err != nil {
		return nostr.Event{}, false // NIP-44 bounds the plaintext length
	}
	s := nostr.Event{Kind: nostr.KindSeal, Content: ct, CreatedAt: 1700000000, Tags: nostr.Tags{}}
	if err := fuzzSender.Sign(&s); err != nil {
		t.Fatal(err)
	}
	return s, true
}

func wrapPlain(t testing.TB, plaintext string) (nostr.Event, bool) {
	ck, err := fuzzEphemeral.ConversationKey(fuzzRecipient.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	ct, err := nip44.Encrypt(plaintext, ck)
	if err != nil {
		return nostr.Event{}, false
	}
	w := nostr.Event{Kind: nostr.KindGiftWrap, Content: ct, CreatedAt: 1700000000, Tags: nostr.Tags{{"p", fuzzRecipient.PublicKey()}}}
	if err := fuzzEphemeral.Sign(&w); err != nil {
		t.Fatal(err)
	}
	return w, true
}

// FuzzUnwrap: whatever the layer the input lands in, Unwrap either opens
// a consistent rumor or fails with ErrNotForMe (outer layer only) or
// ErrMalformed; Wrap∘Unwrap gives back the rumor that was wrapped.
func FuzzUnwrap(f *testing.F) {
	b, err := os.ReadFile("../testdata/nip59-example.json")
	if err != nil {
		f.Fatal(err)
	}
	var ex struct {
		Rumor json.RawMessage `json:"rumor"`
		Seal  json.RawMessage `json:"seal"`
		Wrap  json.RawMessage `json:"wrap"`
	}
	if err := json.Unmarshal(b, &ex); err != nil {
		f.Fatal(err)
	}
	f.Add(byte(modeWrapJSON), []byte(ex.Wrap))
	f.Add(byte(modeSealJSON), []byte(ex.Seal))
	f.Add(byte(modeRumorJSON), []byte(ex.Rumor))
	f.Add(byte(modeRumorJSON), []byte(`{"kind":14,"pubkey":"`+fuzzSender.PublicKey()+`","created_at":1,"tags":[["p","x"]],"content":"hi","id":"00"}`))
	f.Add(byte(modeSealJSON), []byte(`{"kind":13,"content":"x","sig":"00"}`))
	f.Add(byte(modeRoundTrip), []byte("Dispute 5b3c2f9e needs a solver"))
	f.Fuzz(func(t *testing.T, mode byte, in []byte) {
		var w nostr.Event
		var ok bool
		switch mode % modes {
		case modeWrapJSON:
			ok = json.Unmarshal(in, &w) == nil
		case modeSealJSON:
			w, ok = wrapPlain(t, string(in))
		case modeRumorJSON:
			var s nostr.Event
			if s, ok = seal(t, string(in)); ok {
				w, ok = wrapPlain(t, s.String())
			}
		case modeRoundTrip:
			rumor := nostr.Event{PubKey: fuzzSender.PublicKey(), CreatedAt: 1700000000, Kind: 14, Tags: nostr.Tags{{"p", fuzzRecipient.PublicKey()}}, Content: string(in)}
			w, err := giftwrap.Wrap(context.Background(), rumor, fuzzSender, fuzzRecipient.PublicKey(), giftwrap.Options{})
			if !utf8.Valid(in) {
				if !errors.Is(err, giftwrap.ErrInvalidRumor) {
					t.Fatalf("wrapped a rumor that is not UTF-8: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("wrap: %v", err)
			}
			o, err := giftwrap.Unwrap(w, fuzzRecipient)
			if err != nil {
				t.Fatalf("unwrap what we wrapped: %v", err)
			}
			if o.Rumor.Content != string(in) {
				t.Fatalf("content changed: %q → %q", in, o.Rumor.Content)
			}
			if o.RumorAuthor() != fuzzSender.PublicKey() || o.SealSigner() != fuzzSender.PublicKey() {
				t.Fatalf("wrong author/signer")
			}
			return
		}
		if !ok {
			return
		}
		o, err := giftwrap.Unwrap(w, fuzzRecipient)
		if err != nil {
			notForMe := errors.Is(err, giftwrap.ErrNotForMe)
			if !notForMe && !errors.Is(err, giftwrap.ErrMalformed) {
				t.Fatalf("untyped rejection: %v", err)
			}
			if notForMe && mode%modes != modeWrapJSON {
				t.Fatalf("the outer layer decrypts, yet ErrNotForMe: %v", err)
			}
			return
		}
		if !keys.ValidPubkey(o.Rumor.PubKey) || o.Rumor.ID != o.Rumor.GetID() {
			t.Fatalf("inconsistent rumor: %+v", o.Rumor)
		}
		if ok, _ := o.Seal.CheckSignature(); !ok || o.Seal.Kind != nostr.KindSeal {
			t.Fatalf("accepted a bad seal: %+v", o.Seal)
		}
	})
}

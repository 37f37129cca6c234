package chat_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/chat"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// The protocol's test-vector keys: Serbero is Alice, the party Bob.
var (
	fuzzSerbero = keys.MustParse("548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a")
	fuzzParty   = keys.MustParse("f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943")
)

// The modes of FuzzValidate.
const (
	modeEvent   = iota // a whole event as a relay delivers it
	modeInnerV2        // the decrypted content of a valid v2 outer event
	modeInnerV1        // the decrypted content of a valid legacy outer event
	modeLine           // a party's text, built in both forms and validated
	modes
)

// FuzzValidate: the chat line validator, both forms. A refusal is always a
// typed *Rejection (ReasonOf names it); an accepted line is from the party,
// kind 1, with the content it was built with.
func FuzzValidate(f *testing.F) {
	now := time.Unix(1755800000, 0)
	v := chat.Validator{Now: func() time.Time { return now }}
	ours, err := chat.Derive(fuzzSerbero, fuzzParty.PublicKey())
	if err != nil {
		f.Fatal(err)
	}
	theirs, err := chat.Derive(fuzzParty, fuzzSerbero.PublicKey())
	if err != nil {
		f.Fatal(err)
	}
	for _, build := range []func(chat.Channel, keys.Keys, string, time.Time) (nostr.Event, nostr.Event, error){chat.BuildV2, chat.BuildV1} {
		outer, inner, err := build(theirs, fuzzParty, "I sent the fiat an hour ago", now)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(modeEvent), []byte(outer.String()))
		f.Add(byte(modeInnerV2), []byte(inner.String()))
		f.Add(byte(modeInnerV1), []byte(inner.String()))
	}
	f.Add(byte(modeLine), []byte("hola, ¿qué pasó?"))
	f.Add(byte(modeInnerV2), []byte(`{"kind":1,"pubkey":"`+fuzzParty.PublicKey()+`","content":"x","tags":[],"created_at":1755800000,"id":"00","sig":"00"}`))
	f.Add(byte(modeEvent), []byte(`{"kind":14,"pubkey":"`+ours.SignPubkey()+`","tags":[["p","`+ours.ConvPubkey()+`"],["p","x"]]}`))
	f.Fuzz(func(t *testing.T, mode byte, in []byte) {
		var ev nostr.Event
		switch mode % modes {
		case modeEvent:
			if json.Unmarshal(in, &ev) != nil {
				return
			}
		case modeInnerV2, modeInnerV1:
			ev = outer(t, ours, mode%modes == modeInnerV2, string(in), now)
			if ev.Kind == 0 {
				return
			}
		case modeLine:
			text := string(in)
			for _, build := range []func(chat.Channel, keys.Keys, string, time.Time) (nostr.Event, nostr.Event, error){chat.BuildV2, chat.BuildV1} {
				out, _, err := build(theirs, fuzzParty, text, now)
				if strings.TrimSpace(text) == "" {
					if err == nil {
						t.Fatal("built a blank line")
					}
					return
				}
				if !utf8.ValidString(text) {
					if !errors.Is(err, chat.ErrInvalidText) {
						t.Fatalf("built a line that is not UTF-8: %v", err)
					}
					return
				}
				if err != nil {
					return // NIP-44 bounds the plaintext length
				}
				l, err := v.Validate(out, ours, fuzzParty.PublicKey())
				if err != nil {
					if chat.ReasonOf(err) == chat.ErrOversized.Reason() {
						return
					}
					t.Fatalf("a genuine line was refused: %v", err)
				}
				if l.Text() != text {
					t.Fatalf("text changed: %q → %q", text, l.Text())
				}
			}
			return
		}
		l, err := v.Validate(ev, ours, fuzzParty.PublicKey())
		if err != nil {
			if chat.ReasonOf(err) == "" {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		if l.Author() != fuzzParty.PublicKey() || l.Inner.Kind != mostro.KindTextNote || !l.Inner.CheckID() {
			t.Fatalf("accepted a line that is not the party's: %+v", l.Inner)
		}
		if ok, _ := l.Inner.CheckSignature(); !ok {
			t.Fatal("accepted a bad inner signature")
		}
	})
}

// outer puts arbitrary plaintext into a correctly addressed and signed
// outer event of the channel (v2: by K_sign under K_conv; v1: by a fixed
// ephemeral key to the shared key). Kind 0 when NIP-44 refuses it.
func outer(t *testing.T, ch chat.Channel, v2 bool, plain string, now time.Time) nostr.Event {
	t.Helper()
	var ck [32]byte
	var err error
	signer := ch.Sign
	addr := ch.ConvPubkey()
	kind := mostro.KindDirect
	if v2 {
		ck, err = ch.ConvConversationKey()
	} else {
		signer = fuzzSerbero // any key signs a legacy wrap
		addr, kind = ch.SharedPubkey(), mostro.KindGiftWrap
		ck, err = signer.ConversationKey(addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	ct, err := nip44.Encrypt(plain, ck)
	if err != nil {
		return nostr.Event{}
	}
	ev := nostr.Event{Kind: kind, CreatedAt: nostr.Timestamp(now.Unix()), Tags: nostr.Tags{{"p", addr}}, Content: ct}
	if err := signer.Sign(&ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

package transport_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip44"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/transport"
)

var (
	fuzzSerbero = keys.MustParse("548f68890c49fa42f104c60352395e60ff030b0b407e955f1eed1400d6c0347a")
	fuzzMostro  = keys.MustParse("f258e73f07386d37133718b6127f873dd7c391b8f43b331ff8254034a13d2943")
)

// The modes of FuzzOpen.
const (
	modeEvent = iota // a whole event as a relay delivers it (kind 14 or 1059)
	modeV2           // the decrypted content of a validly signed v2 event
	modeV1           // the rumor content of a valid v1 gift wrap (rumor kind 1)
	modes
)

func tupleSeeds(f *testing.F) []string {
	b, err := os.ReadFile("../testdata/mostro-vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var v struct {
		Canonical map[string]string `json:"canonical_messages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	var out []string
	for _, s := range v.Canonical {
		if s != "" && s[0] == '[' {
			out = append(out, s)
		}
	}
	return out
}

// FuzzOpen: transport.Open (v1 and v2) on hostile input either returns a
// message that is exactly what the tuple decodes to, from the sender that
// signed it, or fails with ErrNotForMe (only when the outermost layer does
// not decrypt) or ErrMalformed. Build∘Open round trips.
func FuzzOpen(f *testing.F) {
	ctx := context.Background()
	msg, err := mostro.NewAdminTakeDispute(mostro.ProtocolV2, "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b")
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []transport.Version{transport.V1, transport.V2} {
		ev, err := transport.Build(ctx, v, msg, fuzzMostro, fuzzSerbero.PublicKey(), transport.Options{Expiration: time.Unix(1800000000, 0)})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(modeEvent), []byte(ev.String()))
	}
	for _, s := range tupleSeeds(f) {
		f.Add(byte(modeV1), []byte(s))
		f.Add(byte(modeV2), []byte(s))
	}
	f.Add(byte(modeV2), []byte(`[{"dispute":{"version":2,"action":"admin-took-dispute"}},"`+string(make([]byte, 0))+`",["`+fuzzMostro.PublicKey()+`","00"]]`))
	f.Add(byte(modeV1), []byte(`[{"dispute":{"version":1,"action":"x"}},"zz"]`))
	f.Fuzz(func(t *testing.T, mode byte, in []byte) {
		var ev nostr.Event
		switch mode % modes {
		case modeEvent:
			if json.Unmarshal(in, &ev) != nil {
				return
			}
		case modeV2:
			ck, err := fuzzMostro.ConversationKey(fuzzSerbero.PublicKey())
			if err != nil {
				t.Fatal(err)
			}
			ct, err := nip44.Encrypt(string(in), ck)
			if err != nil {
				return
			}
			ev = nostr.Event{Kind: mostro.KindDirect, CreatedAt: 1700000000, Tags: nostr.Tags{{"p", fuzzSerbero.PublicKey()}}, Content: ct}
			if err := fuzzMostro.Sign(&ev); err != nil {
				t.Fatal(err)
			}
		case modeV1:
			rumor := nostr.Event{PubKey: fuzzMostro.PublicKey(), CreatedAt: 1700000000, Kind: mostro.KindTextNote, Tags: nostr.Tags{}, Content: string(in)}
			w, err := giftwrap.Wrap(ctx, rumor, fuzzMostro, fuzzSerbero.PublicKey(), giftwrap.Options{})
			if err != nil {
				return
			}
			ev = w
		}
		rcv, err := transport.Open(ev, fuzzSerbero, transport.OpenOptions{})
		if err != nil {
			notForMe := errors.Is(err, transport.ErrNotForMe)
			if !notForMe && !errors.Is(err, transport.ErrMalformed) {
				t.Fatalf("untyped rejection: %v", err)
			}
			if notForMe && mode%modes != modeEvent {
				t.Fatalf("content decrypts, yet ErrNotForMe: %v", err)
			}
			return
		}
		if mode%modes != modeEvent {
			if rcv.Sender != fuzzMostro.PublicKey() {
				t.Fatalf("sender %s", rcv.Sender)
			}
			tu, err := mostro.DecodeTuple(in)
			if err != nil {
				t.Fatalf("opened a tuple that does not decode: %v", err)
			}
			a, errA := tu.Message.Encode()
			b, errB := rcv.Message.Encode()
			if (errA == nil) != (errB == nil) || string(a) != string(b) {
				t.Fatalf("opened message differs from its tuple:\n%s\n%s", a, b)
			}
		}
		if rcv.Version == transport.V2 && rcv.Tuple.Len != 3 || rcv.Version == transport.V1 && rcv.Tuple.Len != 2 {
			t.Fatalf("version %d with a %d-tuple", rcv.Version, rcv.Tuple.Len)
		}
	})
}

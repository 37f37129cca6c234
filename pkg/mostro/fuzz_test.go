package mostro_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"testing"

	"github.com/nbd-wtf/go-nostr"

	"github.com/serbero/serbero/pkg/mostro"
)

// vectorSeeds returns the canonical messages and tuples of the shared test
// vectors (testdata/mostro-vectors.json).
func vectorSeeds(f *testing.F) []string {
	f.Helper()
	b, err := os.ReadFile("testdata/mostro-vectors.json")
	if err != nil {
		f.Fatal(err)
	}
	var v struct {
		Canonical map[string]string `json:"canonical_messages"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	out := make([]string, 0, len(v.Canonical))
	for _, s := range v.Canonical {
		out = append(out, s)
	}
	return out
}

// messageSeeds are the vectors' messages, the upstream fixtures and a few
// hostile shapes.
func messageSeeds(f *testing.F) []string {
	seeds := []string{
		`{"dispute":{"version":1,"action":"admin-take-dispute"}}`,
		`{"order":{"version":2,"request_id":18446744073709551615,"trade_index":-1,"action":"x","payload":{"amount":1e400}}}`,
		`{"order":{"version":1,"action":"new-order","payload":{"order":{"rating":-0.0,"x":[1.5e-7,"\u2028<>&"]}}}}`,
		`{"cant-do":{"version":1,"action":"cant-do","payload":{"cant_do":null}}}`,
		`{"dispute":{"version":1,"id":"{5B3C2F9E3A8F4BD69F7E1C2D3E4F5A6B}","action":"dispute","payload":{"dispute":["urn:uuid:5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b",null,{"id":""}]}}}`,
		`{"order":{"version":1,"action":"a"},"dispute":{"version":1,"action":"b"}}`,
		`[]`, `null`, `{}`, `{"order":null}`,
	}
	for _, s := range vectorSeeds(f) {
		if len(s) > 0 && s[0] == '[' {
			var arr []json.RawMessage
			if json.Unmarshal([]byte(s), &arr) == nil && len(arr) > 0 {
				seeds = append(seeds, string(arr[0]))
			}
			continue
		}
		seeds = append(seeds, s)
	}
	for _, fx := range upstreamFixtures() {
		for _, s := range []string{fx.upstream, fx.reencoded, fx.canonical} {
			if s != "" {
				seeds = append(seeds, s)
			}
		}
	}
	return seeds
}

// FuzzDecodeMessage: a rejected message is ErrMalformedMessage; an accepted
// one that encodes re-decodes to the same canonical bytes (decode∘encode is
// the identity on canonical bytes), the property the tuple signature rests
// on.
func FuzzDecodeMessage(f *testing.F) {
	for _, s := range messageSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := mostro.DecodeMessage(b)
		if err != nil {
			if !errors.Is(err, mostro.ErrMalformedMessage) {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		enc, err := m.Encode()
		if err != nil {
			// Decoded but not encodable: only a payload variant whose raw
			// value canonicalisation refuses may do that.
			if m.Kind.Payload == nil || m.Kind.Payload.Raw == nil {
				t.Fatalf("decoded message does not encode: %v (%s)", err, b)
			}
			return
		}
		m2, err := mostro.DecodeMessage(enc)
		if err != nil {
			t.Fatalf("canonical encoding does not decode: %v\n%s", err, enc)
		}
		enc2, err := m2.Encode()
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical:\n%s\n%s", enc, enc2)
		}
		if m2.Kind.Action != m.Kind.Action || m2.Kind.ID != m.Kind.ID || m2.Wrapper != m.Wrapper {
			t.Fatalf("round trip changed the message: %+v vs %+v", m, m2)
		}
	})
}

// FuzzDecodeTuple: v1 and v2 tuples; rejections are ErrMalformedMessage;
// an accepted tuple re-encodes (in its own version) to bytes that decode
// to the same message, signature and identity proof, canonically.
func FuzzDecodeTuple(f *testing.F) {
	for _, s := range vectorSeeds(f) {
		f.Add([]byte(s))
	}
	for _, s := range []string{
		`[{"dispute":{"version":2,"action":"x"}},"` + string(bytes.Repeat([]byte("ab"), 64)) + `",["00","11"]]`,
		`[{"dispute":{"version":2,"action":"x"}},null,["a"]]`,
		`[{"dispute":{"version":2,"action":"x"}},1,null]`,
		`[{"dispute":{"version":1,"action":"x"}}]`, `[1,2,3,4]`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tu, err := mostro.DecodeTuple(b)
		if err != nil {
			if !errors.Is(err, mostro.ErrMalformedMessage) {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		var enc []byte
		switch tu.Len {
		case 2:
			enc, err = mostro.EncodeTupleV1(tu.Message, tu.Signature)
		case 3:
			enc, err = mostro.EncodeTupleV2(tu.Message, tu.Signature, tu.Identity)
		default:
			t.Fatalf("accepted a tuple of %d elements", tu.Len)
		}
		if err != nil {
			return // a raw payload value canonicalisation refuses (see FuzzDecodeMessage)
		}
		tu2, err := mostro.DecodeTuple(enc)
		if err != nil {
			t.Fatalf("canonical tuple does not decode: %v\n%s", err, enc)
		}
		if tu2.Len != tu.Len || tu2.Signature != tu.Signature || (tu.Identity == nil) != (tu2.Identity == nil) ||
			(tu.Identity != nil && *tu.Identity != *tu2.Identity) {
			t.Fatalf("round trip changed the tuple: %+v vs %+v", tu, tu2)
		}
		var enc2 []byte
		if tu.Len == 2 {
			enc2, _ = mostro.EncodeTupleV1(tu2.Message, tu2.Signature)
		} else {
			enc2, _ = mostro.EncodeTupleV2(tu2.Message, tu2.Signature, tu2.Identity)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not canonical:\n%s\n%s", enc, enc2)
		}
	})
}

// eventSeeds are real-shaped kind 38386 and 38385 events as mostrod
// publishes them, and broken variants.
func eventSeeds() []string {
	return []string{
		`{"kind":38386,"pubkey":"` + pk + `","created_at":1755800000,"content":"","tags":[["d","5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"],["expiration","1763576000"],["s","initiated"],["initiator","buyer"],["created_at","1755799990"],["y","mostro","Test node"],["z","dispute"]]}`,
		`{"kind":38386,"pubkey":"` + pk + `","created_at":1755800001,"content":"","tags":[["d","5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"],["s","in-progress"],["published_at","x"],["y","mostrop2p"],["z","dispute"]]}`,
		`{"kind":38386,"tags":[["d"],["d",""],["s"],["initiator","martian"],["expiration","-1"]]}`,
		`{"kind":38385,"pubkey":"` + pk + `","created_at":1755800000,"content":"","tags":[["d","` + pk + `"],["mostro_version","0.18.5"],["pow","4"],["pow_first_contact","10"],["protocol_version","2"],["fee","0.006"],["y","mostro"],["z","info"]]}`,
		`{"kind":38385,"tags":[["protocol_version","0"],["pow","-1"],["pow_first_contact","99999999999999999999"]]}`,
		`{"kind":38385,"tags":[["pow","12"],["pow_first_contact","3"]]}`,
		`{"kind":1,"tags":[]}`,
	}
}

const pk = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"

// FuzzParseDisputeEvent: a rejected event is ErrNotDisputeEvent; an
// accepted one has a status and, as its id, the first non-empty d tag.
func FuzzParseDisputeEvent(f *testing.F) {
	for _, s := range eventSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev nostr.Event
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		d, err := mostro.ParseDisputeEvent(ev)
		if err != nil {
			if !errors.Is(err, mostro.ErrNotDisputeEvent) {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		if ev.Kind != mostro.KindDispute || d.DisputeID == "" || d.Status == "" {
			t.Fatalf("accepted an unusable revision: %+v", d)
		}
		found := false
		for _, tag := range ev.Tags {
			if len(tag) >= 2 && tag[0] == "d" && tag[1] != "" {
				if tag[1] != d.DisputeID {
					t.Fatalf("dispute id %q is not the first d tag %q", d.DisputeID, tag[1])
				}
				found = true
				break
			}
		}
		if !found {
			t.Fatalf("dispute id %q without a d tag", d.DisputeID)
		}
		if !d.InitiatorTagged && d.Initiator != "unknown" {
			t.Fatalf("untagged initiator %q", d.Initiator)
		}
	})
}

// FuzzParseNodeInfo: a rejected event is ErrNotNodeInfo; an accepted one
// has a protocol version of at least 1 and pow_first_contact ≥ pow ≥ 0.
func FuzzParseNodeInfo(f *testing.F) {
	for _, s := range eventSeeds() {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ev nostr.Event
		if json.Unmarshal(b, &ev) != nil {
			return
		}
		n, err := mostro.ParseNodeInfo(ev)
		if err != nil {
			if !errors.Is(err, mostro.ErrNotNodeInfo) {
				t.Fatalf("untyped rejection: %v", err)
			}
			return
		}
		if n.ProtocolVersion < 1 || n.PoW < 0 || n.PoWFirstContact < n.PoW {
			t.Fatalf("accepted unusable info: %+v", n)
		}
		if n.Supported() != (n.ProtocolVersion == 1 || n.ProtocolVersion == 2) {
			t.Fatalf("Supported disagrees with version %d", n.ProtocolVersion)
		}
	})
}

// FuzzNormalizeUUID: an accepted UUID normalises to the lowercase
// hyphenated form, which is a fixed point.
func FuzzNormalizeUUID(f *testing.F) {
	for _, s := range []string{"5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", "5B3C2F9E3A8F4BD69F7E1C2D3E4F5A6B",
		"{5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b}", "urn:uuid:5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b", "", "x", "5b3c2f9e_3a8f-4bd6-9f7e-1c2d3e4f5a6b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := mostro.NormalizeUUID(s)
		if err != nil {
			return
		}
		if len(u) != 36 {
			t.Fatalf("normalised %q to %q", s, u)
		}
		u2, err := mostro.NormalizeUUID(u)
		if err != nil || u2 != u {
			t.Fatalf("not a fixed point: %q → %q (%v)", u, u2, err)
		}
	})
}

package server

import (
	"testing"
	"time"

	"github.com/serbero/serbero/services/intakesvc/internal/store"
)

// FuzzDecodeToken feeds the page-token decoder what a client may send.
// Properties: it never panics; a token it accepts re-encodes to a token
// that decodes to the same position.
func FuzzDecodeToken(f *testing.F) {
	for _, k := range []any{store.PageKey{DetectedAt: 1_800_000_000, DisputeID: "d-1"},
		store.QuarantineKey{LastSeen: time.Unix(1_800_000_000, 123000).UTC(), EventID: "e1"}} {
		tok, err := encodeToken(k)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	f.Add("")
	f.Add("garbage!")
	f.Add("e30")    // {}
	f.Add("bnVsbA") // null
	f.Add("W10")    // []
	f.Add("e30gMQ") // {} 1
	f.Fuzz(func(t *testing.T, tok string) {
		var pk store.PageKey
		if decodeToken(tok, &pk) == nil {
			again, err := encodeToken(pk)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", pk, err)
			}
			var back store.PageKey
			if err := decodeToken(again, &back); err != nil || back != pk {
				t.Fatalf("round trip of %+v gave %+v, %v", pk, back, err)
			}
		}
		var qk store.QuarantineKey
		if decodeToken(tok, &qk) == nil {
			again, err := encodeToken(qk)
			if err != nil {
				return // a time JSON cannot encode (year out of range) is refused on the way back, never a panic
			}
			var back store.QuarantineKey
			if err := decodeToken(again, &back); err != nil || !back.LastSeen.Equal(qk.LastSeen) || back.EventID != qk.EventID {
				t.Fatalf("round trip of %+v gave %+v, %v", qk, back, err)
			}
		}
	})
}

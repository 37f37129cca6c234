package handoff_test

import (
	"bytes"
	"testing"

	"github.com/serbero/serbero/pkg/handoff"
)

// FuzzDecode: any payload either decodes or is refused with an error (a
// deserialize_failed report), never a panic; what decodes re-encodes to a
// canonical form that decodes to the same package.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"dispute_id":"d-1","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`,
		`{"dispute_id":"d-1","session_id":"s-1","trigger":"t","evidence_refs":["e1","note: <a&b>"],"prompt_bundle_id":"p","policy_hash":"h","rationale_refs":[],"assembled_at":-1}`,
		`{"dispute_id":"d","session_id":null,"trigger":"t","evidence_refs":[],"prompt_bundle_id":"p","policy_hash":"h","rationale_refs":[],"assembled_at":1,"extra":{"x":[1,2]}}`,
		`{"dispute_id":"d","session_id":"","trigger":"t","evidence_refs":[],"prompt_bundle_id":"p","policy_hash":"h","rationale_refs":[],"assembled_at":1}`,
		`{"dispute_id":"d","dispute_id":"e"}`,
		`{"dispute_id":"q\"b\\s\n\u0001é😀"}`,
		`[]`, `null`, `{`, `{"assembled_at":1e3}`, "\xff", ``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_ = handoff.BestEffortDisputeID(raw)
		p, err := handoff.Decode(raw)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal must say why")
			}
			return
		}
		enc := p.Encode()
		back, err := handoff.Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded package does not decode: %v\n%s", err, enc)
		}
		if again := back.Encode(); !bytes.Equal(again, enc) {
			t.Fatalf("encoding is not canonical:\n%s\n%s", enc, again)
		}
		if back.DisputeID != p.DisputeID || back.SessionID != p.SessionID || back.EmptySession != p.EmptySession || back.Trigger != p.Trigger ||
			back.AssembledAt != p.AssembledAt || len(back.EvidenceRefs) != len(p.EvidenceRefs) || len(back.RationaleRefs) != len(p.RationaleRefs) {
			t.Fatalf("round trip changed the package: %+v -> %+v", p, back)
		}
	})
}

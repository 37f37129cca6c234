package handoff_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/handoff"
)

func samplePackage() handoff.Package {
	return handoff.Package{
		DisputeID:      "d-1",
		Trigger:        "conflicting_claims",
		EvidenceRefs:   []string{},
		PromptBundleID: "phase3-default",
		PolicyHash:     "hash-1",
		RationaleRefs:  []string{"9f86d081884c"},
		AssembledAt:    1745000000,
	}
}

func TestPackageEncode(t *testing.T) {
	t.Parallel()
	withSession := samplePackage()
	withSession.SessionID = "s-1"
	withSession.EvidenceRefs = []string{"e1", "note: <a&b>"}
	nilSlices := samplePackage()
	nilSlices.EvidenceRefs, nilSlices.RationaleRefs = nil, nil
	escapes := samplePackage()
	escapes.Trigger = "q\"b\\s\n\r\t\b\f\x01\x1f\u2028é😀\x7f"

	tests := []struct {
		name string
		pkg  handoff.Package
		want string
	}{
		{"dispute-scoped omits session_id (the reference's example)", samplePackage(),
			`{"dispute_id":"d-1","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`},
		{"session-scoped, no HTML escaping", withSession,
			`{"dispute_id":"d-1","session_id":"s-1","trigger":"conflicting_claims","evidence_refs":["e1","note: <a&b>"],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`},
		{"nil arrays are empty arrays, never null", nilSlices,
			`{"dispute_id":"d-1","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":[],"assembled_at":1745000000}`},
		{"serde_json escaping; UTF-8 as is", escapes,
			`{"dispute_id":"d-1","trigger":"q\"b\\s\n\r\t\b\f\u0001\u001f` + "\u2028é😀\x7f" + `","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(tt.pkg.Encode())
			require.Equal(t, tt.want, got)
			require.NotContains(t, got, "\n")
			back, err := handoff.Decode([]byte(got))
			require.NoError(t, err)
			want := tt.pkg
			if want.EvidenceRefs == nil {
				want.EvidenceRefs = []string{}
			}
			if want.RationaleRefs == nil {
				want.RationaleRefs = []string{}
			}
			require.Equal(t, want, back, "round trip")
		})
	}
}

func TestPackageDecode(t *testing.T) {
	t.Parallel()
	full := `{"dispute_id":"d-1","session_id":"s-1","trigger":"t","evidence_refs":["e"],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`
	ok := []struct {
		name    string
		in      string
		session string
	}{
		{"full", full, "s-1"},
		{"session_id absent", `{"dispute_id":"d-1","trigger":"t","evidence_refs":["e"],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`, ""},
		{"session_id null", `{"dispute_id":"d-1","session_id":null,"trigger":"t","evidence_refs":["e"],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`, ""},
		{"unknown keys ignored, any order, whitespace", ` { "extra": {"x":[1,null]}, "assembled_at": 7, "rationale_refs": [], "policy_hash": "h", "prompt_bundle_id": "b", "evidence_refs": ["e"], "trigger": "t", "session_id": "s-1", "dispute_id": "d-1", "z": null } `, "s-1"},
	}
	for _, tt := range ok {
		t.Run("ok/"+tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := handoff.Decode([]byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, handoff.Package{
				DisputeID: "d-1", SessionID: tt.session, Trigger: "t", EvidenceRefs: []string{"e"},
				PromptBundleID: "b", PolicyHash: "h", RationaleRefs: []string{}, AssembledAt: 7,
			}, p)
		})
	}

	bad := []struct {
		name, in, errHas string
	}{
		{"spec example", `{"dispute_id":"d-malformed","this_is":"broken","missing_required_fields":true}`, "missing field `trigger`"},
		{"not json", `this is not json at all {{{`, ""},
		{"empty", ``, "EOF"},
		{"array", `[1,2]`, "expected a JSON object"},
		{"string", `"x"`, "expected a JSON object"},
		{"null", `null`, "expected a JSON object"},
		{"truncated", `{"dispute_id":"d-1"`, ""},
		{"trailing", full + ` {}`, "trailing"},
		{"duplicate key", strings.Replace(full, `"trigger":"t"`, `"trigger":"t","trigger":"u"`, 1), "duplicate field `trigger`"},
		{"null string", strings.Replace(full, `"trigger":"t"`, `"trigger":null`, 1), "field `trigger`"},
		{"number for string", strings.Replace(full, `"dispute_id":"d-1"`, `"dispute_id":5`, 1), "field `dispute_id`"},
		{"number session_id", strings.Replace(full, `"session_id":"s-1"`, `"session_id":5`, 1), "field `session_id`"},
		{"null array", strings.Replace(full, `"evidence_refs":["e"]`, `"evidence_refs":null`, 1), "field `evidence_refs`"},
		{"null inside array", strings.Replace(full, `"evidence_refs":["e"]`, `"evidence_refs":["e",null]`, 1), "evidence_refs[1]"},
		{"number inside array", strings.Replace(full, `"rationale_refs":[]`, `"rationale_refs":[1]`, 1), "rationale_refs[0]"},
		{"string for array", strings.Replace(full, `"rationale_refs":[]`, `"rationale_refs":"r"`, 1), "field `rationale_refs`"},
		{"float assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":7.5`, 1), "assembled_at"},
		{"integral float assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":7.0`, 1), "assembled_at"},
		{"exponent assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":7e3`, 1), "assembled_at"},
		{"string assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":"7"`, 1), "assembled_at"},
		{"null assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":null`, 1), "assembled_at"},
		{"overflow assembled_at", strings.Replace(full, `"assembled_at":7`, `"assembled_at":9223372036854775808`, 1), "assembled_at"},
		{"invalid utf-8", strings.Replace(full, `"t"`, "\"\xff\"", 1), "UTF-8"},
	}
	for _, f := range []string{"dispute_id", "trigger", "evidence_refs", "prompt_bundle_id", "policy_hash", "rationale_refs", "assembled_at"} {
		in := full
		for _, part := range strings.Split(strings.Trim(full, "{}"), ",") {
			if strings.HasPrefix(part, `"`+f+`"`) {
				in = strings.Replace(in, part, `"x":0`, 1)
			}
		}
		bad = append(bad, struct{ name, in, errHas string }{"missing " + f, in, "missing field `" + f + "`"})
	}
	for _, tt := range bad {
		t.Run("bad/"+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := handoff.Decode([]byte(tt.in))
			require.Error(t, err)
			require.NotEmpty(t, err.Error())
			require.Contains(t, err.Error(), tt.errHas)
		})
	}
}

// An empty session_id is kept as a key (the reference decodes it as a
// present, empty session id and serialises it back), while null and absent
// both mean no key.
func TestPackageEmptySessionKeepsTheKey(t *testing.T) {
	t.Parallel()
	in := `{"dispute_id":"d-1","session_id":"","trigger":"t","evidence_refs":[],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`
	p, err := handoff.Decode([]byte(in))
	require.NoError(t, err)
	require.True(t, p.EmptySession)
	require.False(t, p.HasSession(), "storage-wise dispute-scoped")
	require.True(t, p.HasSessionKey())
	require.Equal(t, in, string(p.Encode()), "the key survives the round trip")

	for _, noKey := range []string{
		`{"dispute_id":"d-1","session_id":null,"trigger":"t","evidence_refs":[],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`,
		`{"dispute_id":"d-1","trigger":"t","evidence_refs":[],"prompt_bundle_id":"b","policy_hash":"h","rationale_refs":[],"assembled_at":7}`,
	} {
		p, err := handoff.Decode([]byte(noKey))
		require.NoError(t, err)
		require.False(t, p.EmptySession)
		require.False(t, p.HasSessionKey())
		require.NotContains(t, string(p.Encode()), "session_id")
	}
	require.NotContains(t, string(handoff.Package{DisputeID: "d"}.Encode()), "session_id", "a producer's empty session writes no key")
}

func TestBestEffortDisputeID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`{"dispute_id":"d-malformed","this_is":"broken"}`: "d-malformed",
		`this is not json at all {{{`:                     "unknown",
		`{"dispute_id":5}`:                                "unknown",
		`{"dispute_id":null}`:                             "unknown",
		`{"other":"x"}`:                                   "unknown",
		`["d-1"]`:                                         "unknown",
	} {
		require.Equal(t, want, handoff.BestEffortDisputeID([]byte(in)), in)
	}
}

func TestPackageValidate(t *testing.T) {
	t.Parallel()
	require.NoError(t, samplePackage().Validate())
	for name, mut := range map[string]func(*handoff.Package){
		"no dispute": func(p *handoff.Package) { p.DisputeID = "" },
		"no trigger": func(p *handoff.Package) { p.Trigger = "" },
		"NUL":        func(p *handoff.Package) { p.EvidenceRefs = []string{"a\x00b"} },
		"bad utf-8":  func(p *handoff.Package) { p.PolicyHash = "\xff" },
	} {
		p := samplePackage()
		mut(&p)
		require.Error(t, p.Validate(), name)
	}
}

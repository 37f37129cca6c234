package bundle_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
)

func TestHashVectors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		s, c, e, m, x string
		want          string
	}{
		{name: "ReferenceVector", s: "s", c: "c", e: "e", m: "m", x: "t", want: "e208ac72a7e9e763ac19015546d716cc6301a582afd1ee5698d83245a78f3d1d"},
		// The NUL delimiters keep field boundaries: moving a byte from one
		// file to the next changes the hash.
		{name: "BoundaryMatters", s: "sc", c: "", e: "e", m: "m", x: "t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := bundle.Hash(tt.s, tt.c, tt.e, tt.m, tt.x)
			require.Len(t, got, 64)
			require.Equal(t, strings.ToLower(got), got)
			if tt.want != "" {
				require.Equal(t, tt.want, got)
			} else {
				require.NotEqual(t, bundle.Hash("s", "c", "e", "m", "t"), got)
			}
		})
	}
	b := bundle.New("s", "c", "e", "m", "t")
	require.Equal(t, "phase3-default", b.ID)
	require.Equal(t, "e208ac72a7e9e763ac19015546d716cc6301a582afd1ee5698d83245a78f3d1d", b.PolicyHash)
	require.NoError(t, b.Verify())
	b.System = "changed"
	require.Error(t, b.Verify())
}

func writeBundle(t *testing.T) bundle.Paths {
	t.Helper()
	dir := t.TempDir()
	p := bundle.Paths{
		System:           filepath.Join(dir, "phase3-system.md"),
		Classification:   filepath.Join(dir, "phase3-classification.md"),
		EscalationPolicy: filepath.Join(dir, "phase3-escalation-policy.md"),
		MediationStyle:   filepath.Join(dir, "phase3-mediation-style.md"),
		MessageTemplates: filepath.Join(dir, "phase3-message-templates.md"),
	}
	for path, text := range map[string]string{p.System: "s", p.Classification: "c", p.EscalationPolicy: "e", p.MediationStyle: "m", p.MessageTemplates: "t"} {
		require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	}
	return p
}

func TestLoad(t *testing.T) {
	t.Parallel()
	p := writeBundle(t)
	b, err := bundle.Load(p)
	require.NoError(t, err)
	require.Equal(t, "e208ac72a7e9e763ac19015546d716cc6301a582afd1ee5698d83245a78f3d1d", b.PolicyHash, "order by logical name")

	missing := p
	missing.EscalationPolicy = filepath.Join(t.TempDir(), "nope.md")
	_, err = bundle.Load(missing)
	require.ErrorContains(t, err, "failed to read prompt bundle file for `escalation_policy_path` at "+missing.EscalationPolicy+": ")

	notUTF8 := p
	notUTF8.MessageTemplates = filepath.Join(t.TempDir(), "bad.md")
	require.NoError(t, os.WriteFile(notUTF8.MessageTemplates, []byte{0xff, 0xfe}, 0o600))
	_, err = bundle.Load(notUTF8)
	require.ErrorContains(t, err, "failed to read prompt bundle file for `message_templates_path`")
}

// The shipped bundle loads, and its hash is recorded here: changing a
// prompt file is a deliberate act that updates this vector (and
// docs/mediation.md).
func TestShippedBundle(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..", "..", "prompts")
	def := bundle.DefaultPaths()
	p := bundle.Paths{
		System:           filepath.Join(root, filepath.Base(def.System)),
		Classification:   filepath.Join(root, filepath.Base(def.Classification)),
		EscalationPolicy: filepath.Join(root, filepath.Base(def.EscalationPolicy)),
		MediationStyle:   filepath.Join(root, filepath.Base(def.MediationStyle)),
		MessageTemplates: filepath.Join(root, filepath.Base(def.MessageTemplates)),
	}
	b, err := bundle.Load(p)
	require.NoError(t, err)
	require.Equal(t, ShippedPolicyHash, b.PolicyHash)
	for _, label := range []string{"coordination_failure_resolvable", "conflicting_claims", "suspected_fraud", "unclear", "not_suitable_for_mediation"} {
		require.Contains(t, b.Classification, "`"+label+"`")
	}
	for _, flag := range []string{"fraud_risk", "conflicting_claims", "low_info", "unresponsive_party", "authority_boundary_attempt"} {
		require.Contains(t, b.Classification, "`"+flag+"`")
	}
	for _, trigger := range []string{"conflicting_claims", "fraud_indicator", "low_confidence", "party_unresponsive", "round_limit",
		"reasoning_unavailable", "authorization_lost", "authority_boundary_attempt", "mediation_timeout",
		"policy_bundle_missing", "invalid_model_output", "notification_failed"} {
		require.Contains(t, b.Escalation, "`"+trigger+"`")
	}
}

// ShippedPolicyHash is the policy_hash of prompts/ as shipped.
const ShippedPolicyHash = "45ba162f81c9d1ce3c0631f071fd6ad92e9f168668291689ee26925374576a83"

// The Helm chart ships a copy of prompts/ (Helm reads files only inside
// the chart): it must stay byte-identical.
func TestChartShipsTheBundle(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..", "..")
	repo, err := filepath.Glob(filepath.Join(root, "prompts", "*.md"))
	require.NoError(t, err)
	require.Len(t, repo, 5)
	for _, p := range repo {
		want, err := os.ReadFile(p)
		require.NoError(t, err)
		got, err := os.ReadFile(filepath.Join(root, "deploy", "k8s", "files", "prompts", filepath.Base(p)))
		require.NoError(t, err, "deploy/k8s/files/prompts lacks %s: copy prompts/ there", filepath.Base(p))
		require.Equal(t, string(want), string(got), "deploy/k8s/files/prompts/%s differs from prompts/: copy it", filepath.Base(p))
	}
}

package route_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/nostrkey"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
)

// The keys are valid x-only points (normalisation checks the curve), except
// where a test says otherwise.
const (
	w1 = "79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
	w2 = "2222222222222222222222222222222222222222222222222222222222222222"
	r1 = "3333333333333333333333333333333333333333333333333333333333333333"
	r2 = "4444444444444444444444444444444444444444444444444444444444444444"
)

func solver(pk string, p config.Permission) config.SolverConfig {
	return config.SolverConfig{Pubkey: pk, Permission: p}
}

func ptr(s string) *string { return &s }

func TestRoute(t *testing.T) {
	t.Parallel()
	mixed := []config.SolverConfig{solver(r1, config.PermissionRead), solver(w1, config.PermissionWrite), solver(w2, config.PermissionWrite)}
	readers := []config.SolverConfig{solver(r1, config.PermissionRead), solver(r2, config.PermissionRead)}
	// w1 as an npub: assignments recorded in hex still target it.
	w1npub := "npub10xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqpkge6d"
	hex, err := nostrkey.Normalize(w1npub)
	require.NoError(t, err)
	require.Equal(t, w1, hex)

	tests := []struct {
		name     string
		assigned *string
		solvers  []config.SolverConfig
		fallback bool
		want     route.Decision
	}{
		{"targeted write wins", ptr(w2), mixed, false, route.Decision{Kind: route.Targeted, Recipients: []string{w2}}},
		{"targeted even with fallback on", ptr(w1), mixed, true, route.Decision{Kind: route.Targeted, Recipients: []string{w1}}},
		{"assigned but unconfigured -> write broadcast", ptr(r2), mixed, false, route.Decision{Kind: route.Broadcast, Recipients: []string{w1, w2}}},
		{"read assigned -> write broadcast", ptr(r1), mixed, false, route.Decision{Kind: route.Broadcast, Recipients: []string{w1, w2}}},
		{"no assignment -> write set, read excluded", nil, mixed, false, route.Decision{Kind: route.Broadcast, Recipients: []string{w1, w2}}},
		{"0 write + fallback on -> all", nil, readers, true, route.Decision{Kind: route.Broadcast, Recipients: []string{r1, r2}, FallbackBroadcast: true}},
		{"0 write + fallback on, read assigned -> all", ptr(r1), readers, true, route.Decision{Kind: route.Broadcast, Recipients: []string{r1, r2}, FallbackBroadcast: true}},
		{"0 write + fallback off -> unroutable", nil, readers, false, route.Decision{Kind: route.Unroutable}},
		{"0 solvers + fallback off -> unroutable", nil, nil, false, route.Decision{Kind: route.Unroutable}},
		{"0 solvers + fallback on -> unroutable", nil, nil, true, route.Decision{Kind: route.Unroutable}},
		{"npub-configured solver matches a hex assignment", ptr(w1),
			[]config.SolverConfig{solver(w2, config.PermissionWrite), solver(w1npub, config.PermissionWrite)}, false,
			route.Decision{Kind: route.Targeted, Recipients: []string{w1npub}}},
		{"malformed pubkeys compare as strings", ptr("not-a-key"),
			[]config.SolverConfig{solver("not-a-key", config.PermissionWrite), solver(w1, config.PermissionWrite)}, false,
			route.Decision{Kind: route.Targeted, Recipients: []string{"not-a-key"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, route.Route(tt.assigned, tt.solvers, tt.fallback))
		})
	}
}

func pkg(session string) handoff.Package {
	return handoff.Package{
		DisputeID: "d-1", SessionID: session, Trigger: "conflicting_claims", EvidenceRefs: []string{},
		PromptBundleID: "phase3-default", PolicyHash: "hash-1", RationaleRefs: []string{"9f86d081884c"}, AssembledAt: 1745000000,
	}
}

func TestBody(t *testing.T) {
	t.Parallel()
	t.Run("dispute-scoped, the reference's example byte for byte", func(t *testing.T) {
		t.Parallel()
		want := "escalation_handoff/v1\n" +
			"Dispute: d-1\n" +
			"Session: <none \u2014 dispute-scoped handoff>\n" +
			"Trigger: conflicting_claims\n" +
			"\n" +
			"Escalation required for dispute d-1. Trigger: conflicting_claims. This dispute was evaluated by Serbero's mediation assistance system and requires human judgment. Please run TakeDispute for dispute d-1 on your Mostro instance to review the full context.\n" +
			"\n" +
			"Handoff payload (JSON):\n" +
			`{"dispute_id":"d-1","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`
		require.Equal(t, want, route.Body(pkg("")))
	})
	t.Run("session-scoped", func(t *testing.T) {
		t.Parallel()
		body := route.Body(pkg("s-1"))
		lines := strings.Split(body, "\n")
		require.Equal(t, "escalation_handoff/v1", lines[0])
		require.Equal(t, "Session: s-1", lines[2])
		require.NotContains(t, body, "<none")
		require.False(t, strings.HasSuffix(body, "\n"), "no trailing newline")
		require.Contains(t, body, "Serbero's mediation assistance system")
		require.Contains(t, body, "Please run TakeDispute for dispute d-1")
		back, err := handoff.Decode([]byte(lines[len(lines)-1]))
		require.NoError(t, err, "the JSON line round-trips")
		require.Equal(t, pkg("s-1"), back)
		require.Contains(t, lines[len(lines)-1], `"session_id":"s-1"`)
	})
	t.Run("no session_id key and never null", func(t *testing.T) {
		t.Parallel()
		body := route.Body(pkg(""))
		require.NotContains(t, body, "session_id")
		require.NotContains(t, body, "null")
		require.NotContains(t, body, "rationale_text")
	})
	t.Run("an empty session_id is kept", func(t *testing.T) {
		t.Parallel()
		p, err := handoff.Decode([]byte(`{"dispute_id":"d-1","session_id":"","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`))
		require.NoError(t, err)
		want := "escalation_handoff/v1\n" +
			"Dispute: d-1\n" +
			"Session: \n" +
			"Trigger: conflicting_claims\n" +
			"\n" +
			"Escalation required for dispute d-1. Trigger: conflicting_claims. This dispute was evaluated by Serbero's mediation assistance system and requires human judgment. Please run TakeDispute for dispute d-1 on your Mostro instance to review the full context.\n" +
			"\n" +
			"Handoff payload (JSON):\n" +
			`{"dispute_id":"d-1","session_id":"","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`
		require.Equal(t, want, route.Body(p), "as the reference: the key kept, an empty Session line")
	})
}

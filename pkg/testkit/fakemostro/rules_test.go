package fakemostro

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// The authorization matrix of mostrod's admin_take_dispute.
func TestTakeMatrix(t *testing.T) {
	t.Parallel()
	node, reader, reader2, writer, writer2, stranger := keys.Generate(), "r1", "r2", "w1", "w2", "x"
	m := &Mostro{keys: node, solvers: map[string]Permission{reader: PermRead, reader2: PermRead, writer: PermReadWrite, writer2: PermReadWrite}}
	cases := []struct {
		who    string
		status mostro.DisputeStatus
		holder string
		want   bool
	}{
		{node.PublicKey(), mostro.DisputeInitiated, "", true},
		{node.PublicKey(), mostro.DisputeInProgress, writer, true},
		{node.PublicKey(), mostro.DisputeSettled, writer, false},
		{reader, mostro.DisputeInitiated, "", true},
		{writer, mostro.DisputeInitiated, "", true},
		{stranger, mostro.DisputeInitiated, "", false},
		{reader, mostro.DisputeInProgress, reader, true},   // re-take by the holder
		{reader2, mostro.DisputeInProgress, reader, false}, // read cannot take over
		{writer, mostro.DisputeInProgress, reader, true},   // write takes over read
		{writer2, mostro.DisputeInProgress, writer, false}, // write cannot take over write
		{writer, mostro.DisputeInProgress, node.PublicKey(), false},
		{reader, mostro.DisputeSellerRefunded, reader, false},
		{writer, mostro.DisputeSettled, "", false},
	}
	for _, c := range cases {
		d := &Dispute{Status: c.status, Solver: c.holder}
		require.Equal(t, c.want, m.canTakeLocked(c.who, d), "%s on %s held by %q", c.who, c.status, c.holder)
	}
}

// mostrod's admin-add-solver payload grammar (parse_solver_payload tests).
func TestSolverPayloadGrammar(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in     string
		npub   string
		perm   Permission
		reason mostro.CantDoReason
	}{
		{"npub1test", "npub1test", PermReadWrite, ""},
		{" npub1test:read ", "npub1test", PermRead, ""},
		{"npub1test:read-write", "npub1test", PermReadWrite, ""},
		{"npub1test:write", "npub1test", PermReadWrite, ""},
		{"npub1test:admin", "", 0, mostro.CantDoInvalidParameters},
		{"npub1test:", "", 0, mostro.CantDoInvalidParameters},
		{"npub1test:read:x", "", 0, mostro.CantDoInvalidParameters},
		{"", "", 0, mostro.CantDoInvalidTextMessage},
		{":read", "", 0, mostro.CantDoInvalidTextMessage},
	}
	for _, c := range cases {
		npub, perm, reason := parseSolverPayload(c.in)
		require.Equal(t, c.reason, reason, c.in)
		require.Equal(t, c.npub, npub, c.in)
		require.Equal(t, c.perm, perm, c.in)
	}
}

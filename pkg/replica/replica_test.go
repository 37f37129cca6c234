package replica_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/replica"
)

func TestID(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	require.NoError(t, err)
	a, b := replica.ID("escalationsvc"), replica.ID("escalationsvc")
	require.NotEqual(t, a, b, "unique per call")
	prefix := host + "-" + strconv.Itoa(os.Getpid()) + "-"
	require.True(t, strings.HasPrefix(a, prefix), "%q starts with %q", a, prefix)
	require.Regexp(t, `-[0-9a-f]{8}$`, a)
}

func TestFormat(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, host, component, wantPrefix string
	}{
		{name: "host", host: "pod-7", component: "authsvc", wantPrefix: "pod-7-42-"},
		{name: "no host: component", host: " ", component: "authsvc", wantPrefix: "authsvc-42-"},
		{name: "nothing", wantPrefix: "serbero-42-"},
		{name: "long host is cut", host: strings.Repeat("h", 100), wantPrefix: strings.Repeat("h", 64) + "-42-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := replica.Format(tt.host, 42, tt.component)
			require.True(t, strings.HasPrefix(got, tt.wantPrefix), got)
			require.Len(t, got, len(tt.wantPrefix)+8)
		})
	}
}

// A long hostname is cut to 64 bytes at a character boundary: the identity
// goes into text columns, and Postgres refuses half a character.
func TestFormatCutsALongHostnameAtACharacter(t *testing.T) {
	t.Parallel()
	id := replica.Format(strings.Repeat("a", 63)+"é", 7, "authsvc")
	require.True(t, utf8.ValidString(id))
	require.True(t, strings.HasPrefix(id, strings.Repeat("a", 63)+"-7-"), id)
}

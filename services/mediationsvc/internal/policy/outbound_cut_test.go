package policy_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
)

// A long placeholder is reported cut to 64 bytes at a character boundary
// (a byte cut inside "é" would be invalid UTF-8 in the audit row).
func TestPlaceholderMatchIsCutAtACharacter(t *testing.T) {
	t.Parallel()
	text := "Hello {{" + strings.Repeat("a", 61) + "é" + strings.Repeat("b", 10) + "}}"
	vs := policy.CheckOutbound(text)
	var found bool
	for _, v := range vs {
		if v.Kind == policy.ViolationPlaceholder {
			found = true
			require.True(t, utf8.ValidString(v.Match), "%q", v.Match)
			require.Equal(t, "{{"+strings.Repeat("a", 61), v.Match)
		}
	}
	require.True(t, found, "%v", vs)
}

package textcut_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/textcut"
)

func TestRunes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"exact", "abc", 3, "abc"},
		{"cut", "abcdef", 3, "abc"},
		{"two-byte character kept whole", strings.Repeat("a", 199) + "é", 200, strings.Repeat("a", 199) + "é"},
		{"two-byte character dropped whole", strings.Repeat("a", 200) + "é", 200, strings.Repeat("a", 200)},
		{"four-byte characters", "𝄞𝄞𝄞", 2, "𝄞𝄞"},
		{"zero", "abc", 0, ""},
		{"negative", "abc", -1, ""},
		{"invalid bytes become U+FFFD", "a\xffb", 3, "a\uFFFDb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, textcut.Runes(tc.in, tc.n))
		})
	}
}

func TestBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"short", "abc", 5, "abc"},
		{"cut", "abcdef", 3, "abc"},
		// 199 ASCII bytes + "é" (2 bytes) cut at 200 bytes: a byte cut
		// would leave half of "é" (invalid UTF-8).
		{"never half a character", strings.Repeat("a", 199) + "é", 200, strings.Repeat("a", 199)},
		{"whole character fits", strings.Repeat("a", 198) + "é", 200, strings.Repeat("a", 198) + "é"},
		{"four-byte character", "a𝄞", 4, "a"},
		{"zero", "abc", 0, ""},
		{"invalid bytes become U+FFFD", "\xff\xfe", 3, "\uFFFD"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, textcut.Bytes(tc.in, tc.n))
		})
	}
}

func TestEllipsis(t *testing.T) {
	t.Parallel()
	require.Equal(t, "abc", textcut.Ellipsis("abc", 3))
	require.Equal(t, "ab…", textcut.Ellipsis("abc", 2))
	require.Equal(t, "é…", textcut.Ellipsis("éé", 1))
}

func FuzzCut(f *testing.F) {
	for _, s := range []string{"", "abc", strings.Repeat("a", 199) + "é", "𝄞x\xff", "\xe2\x82", "日本語"} {
		f.Add(s, 3)
	}
	f.Fuzz(func(t *testing.T, s string, n int) {
		valid := strings.ToValidUTF8(s, "\uFFFD")
		r := textcut.Runes(s, n)
		require.True(t, utf8.ValidString(r))
		require.True(t, strings.HasPrefix(valid, r))
		require.LessOrEqual(t, utf8.RuneCountInString(r), max(n, 0))
		if n >= utf8.RuneCountInString(valid) {
			require.Equal(t, valid, r)
		}
		b := textcut.Bytes(s, n)
		require.True(t, utf8.ValidString(b))
		require.True(t, strings.HasPrefix(valid, b))
		require.LessOrEqual(t, len(b), max(n, 0))
		if n > 0 && len(valid) > n {
			require.Greater(t, len(b), n-utf8.UTFMax, "at most one character short of the limit")
		}
		e := textcut.Ellipsis(s, n)
		require.True(t, utf8.ValidString(e))
		c := textcut.Clean(s, n)
		require.True(t, utf8.ValidString(c))
		require.LessOrEqual(t, utf8.RuneCountInString(c), max(n, 0))
		require.NotContains(t, c, "\uFFFD")
	})
}

func TestClean(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want string
	}{
		{"trimmed", "  abc \n", 10, "abc"},
		{"control characters dropped", "a\x00b\x1bc\u200bd", 10, "abcd"},
		{"invalid bytes dropped", "a\xffb", 10, "ab"},
		{"199 characters and é", strings.Repeat("a", 199) + "é", 200, strings.Repeat("a", 199) + "é"},
		{"cut by characters", "ééé", 2, "éé"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, textcut.Clean(tc.in, tc.n))
		})
	}
}

package reason_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/apperr"
	"github.com/serbero/serbero/services/relaygw/internal/reason"
)

func TestCheckKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, key, want string
	}{
		{"Plain", "initial:5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b:" + strings.Repeat("a", 64), ""},
		{"Unicode", "clé:ñ:日本", ""},
		{"Max", strings.Repeat("k", 256), ""},
		{"Empty", "", "is required"},
		{"TooLong", strings.Repeat("k", 257), "longer than 256 bytes"},
		{"TooLongMultibyte", strings.Repeat("é", 129), "longer than 256 bytes"},
		{"NUL", "a\x00b", "control character"},
		{"Newline", "a\nb", "control character"},
		{"DEL", "a\x7fb", "control character"},
		{"C1", "a\u0085b", "control character"},
		{"InvalidUTF8", "a\xffb", "not valid UTF-8"},
		{"TruncatedRune", "caf\xc3", "not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := reason.CheckKey(tt.key)
			if tt.want == "" {
				require.NoError(t, err)
				return
			}
			require.ErrorContains(t, err, tt.want)
			require.Equal(t, apperr.KindInvalidArgument, apperr.KindOf(err))
			require.Equal(t, reason.InvalidIdempotencyKey, reason.Of(err))
			require.Equal(t, "SEND_ERROR_REASON_INVALID_IDEMPOTENCY_KEY", apperr.ReasonOf(err))
		})
	}
}

func FuzzCheckKey(f *testing.F) {
	for _, s := range []string{"", "k", "initial:1:abc", "a\x00b", "\xff", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		err := reason.CheckKey(key)
		if err != nil {
			require.Equal(t, reason.InvalidIdempotencyKey, reason.Of(err), "every refusal is typed")
			return
		}
		// An accepted key is storable as Postgres text and within the
		// column's bound.
		require.NotContains(t, key, "\x00")
		require.LessOrEqual(t, len(key), 256)
		require.NotEmpty(t, key)
	})
}

package nostrkey_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/nostrkey"
)

// A key pair from NIP-19's examples: the hex key and its npub.
const (
	nip19Hex  = "3bf0c63fcb93463407af97a5e5ee64fa883d107ef9e558472c4eb9aaaefa459d"
	nip19Npub = "npub180cvv07tjdrrgpa0j7j7tmnyl2yr6yr7l8j4s3evf6u64th6gkwsyjh6w6"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string
	}{
		{name: "lowercase hex", in: nip19Hex, want: nip19Hex},
		{name: "uppercase hex", in: strings.ToUpper(nip19Hex), want: nip19Hex},
		{name: "surrounding space", in: "  " + nip19Hex + "\n", want: nip19Hex},
		{name: "npub", in: nip19Npub, want: nip19Hex},
		{name: "uppercase npub", in: strings.ToUpper(nip19Npub), want: nip19Hex},
		{name: "npub of the reference sample", in: "npub1qv9pzxqlyckngw6zf9g9whn9d3eh4qvg37tfmf9tk2uup37w6hwq7hh6zv", want: "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := nostrkey.Normalize(tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
			require.True(t, nostrkey.Valid(tt.in))
		})
	}
}

func TestNormalizeRejects(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "empty", in: "", wantErr: "want 64 hex characters or an npub, got 0 characters"},
		{name: "short hex", in: nip19Hex[:62], wantErr: "got 62 characters"},
		{name: "not hex", in: "zz" + nip19Hex[2:], wantErr: "not hex"},
		{name: "off the curve", in: strings.Repeat("03", 32), wantErr: "not a point on secp256k1"},
		{name: "above the field prime", in: strings.Repeat("ff", 32), wantErr: "not a point on secp256k1"},
		{name: "npub with a bad checksum", in: nip19Npub[:len(nip19Npub)-1] + "7", wantErr: "bad npub"},
		{name: "mixed-case npub", in: "npub1" + strings.ToUpper(nip19Npub[5:]), wantErr: "bad npub"},
		{name: "nsec is not a public key", in: "nsec1vl029mgpspedva04g90vltkh6fvh240zqtv9k0t9af8935ke9laqsnlfe5", wantErr: "invalid public key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := nostrkey.Normalize(tt.in)
			require.ErrorIs(t, err, nostrkey.ErrInvalid)
			require.ErrorContains(t, err, tt.wantErr)
			require.False(t, nostrkey.Valid(tt.in))
		})
	}
}

func TestNpubRoundTrip(t *testing.T) {
	t.Parallel()
	npub, err := nostrkey.Npub(strings.ToUpper(nip19Hex))
	require.NoError(t, err)
	require.Equal(t, nip19Npub, npub)
	_, err = nostrkey.Npub("nope")
	require.ErrorIs(t, err, nostrkey.ErrInvalid)
}

// FuzzNormalize: whatever the input, Normalize either fails with
// ErrInvalid or returns 64 lowercase hex characters that it maps to
// themselves, whose npub maps back to them.
func FuzzNormalize(f *testing.F) {
	for _, s := range []string{
		nip19Hex, strings.ToUpper(nip19Hex), nip19Npub, strings.ToUpper(nip19Npub), " " + nip19Hex + " ",
		strings.Repeat("03", 32), strings.Repeat("ff", 32), "", "npub1", "npub1qqqqqqqq", nip19Npub[:40],
		"npub1qv9pzxqlyckngw6zf9g9whn9d3eh4qvg37tfmf9tk2uup37w6hwq7hh6zv",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		canonical, cerr := nostrkey.CanonicalHex(s)
		if cerr != nil {
			require.ErrorIs(t, cerr, nostrkey.ErrInvalid)
		} else {
			again, err := nostrkey.CanonicalHex(canonical)
			require.NoError(t, err)
			require.Equal(t, canonical, again, "CanonicalHex is idempotent")
		}
		got, err := nostrkey.Normalize(s)
		if err != nil {
			require.ErrorIs(t, err, nostrkey.ErrInvalid)
			require.Empty(t, got)
			return
		}
		require.NoError(t, cerr, "Normalize accepts only what CanonicalHex accepts")
		require.Equal(t, canonical, got)
		require.Len(t, got, 64)
		require.Equal(t, strings.ToLower(got), got)
		again, err := nostrkey.Normalize(got)
		require.NoError(t, err)
		require.Equal(t, got, again, "Normalize is idempotent")
		npub, err := nostrkey.Npub(got)
		require.NoError(t, err)
		back, err := nostrkey.Normalize(npub)
		require.NoError(t, err)
		require.Equal(t, got, back, "npub round trip")
	})
}

func TestCanonicalHexChecksTheFormOnly(t *testing.T) {
	t.Parallel()
	offCurve := strings.Repeat("03", 32)
	got, err := nostrkey.CanonicalHex(strings.ToUpper(offCurve))
	require.NoError(t, err)
	require.Equal(t, offCurve, got)
	_, err = nostrkey.Normalize(offCurve)
	require.ErrorIs(t, err, nostrkey.ErrInvalid)
	_, err = nostrkey.CanonicalHex("abc")
	require.ErrorIs(t, err, nostrkey.ErrInvalid)
	got, err = nostrkey.CanonicalHex(nip19Npub)
	require.NoError(t, err)
	require.Equal(t, nip19Hex, got)
}

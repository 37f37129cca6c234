// Package textcut shortens text for storage and logs without splitting a
// character. Postgres refuses text that is not valid UTF-8, so a byte cut
// in the middle of "é" turns a bounded field into an error (and the row is
// lost); every function here returns valid UTF-8 that ends on a character
// boundary. Bytes that are not UTF-8 in the input become U+FFFD.
package textcut

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Runes returns s cut to at most n characters (runes); n <= 0 gives "".
func Runes(s string, n int) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	if n <= 0 {
		return ""
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// Bytes returns the longest prefix of s that is at most n bytes long and
// ends on a character boundary; n <= 0 gives "".
func Bytes(s string, n int) string {
	s = strings.ToValidUTF8(s, string(utf8.RuneError))
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Ellipsis is Runes with "…" appended when something was cut (for logs and
// messages: the reader sees that the text goes on).
func Ellipsis(s string, n int) string {
	out := Runes(s, n)
	if len(out) < len(strings.ToValidUTF8(s, string(utf8.RuneError))) {
		return out + "…"
	}
	return out
}

// Clean is caller text made fit for a log line or a bounded column:
// surrounding space trimmed, characters that are not printable dropped
// (control characters, U+FFFD for bytes that were not UTF-8 included), then
// cut to at most n characters.
func Clean(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return -1
		}
		return r
	}, strings.TrimSpace(s))
	return Runes(s, n)
}

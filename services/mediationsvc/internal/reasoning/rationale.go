package reasoning

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
)

// Rationale is the model's reasoning text. It is stored only in the
// rationale store: every way of printing it (fmt verbs, slog, JSON) shows
// "<N bytes redacted>"; only Reveal returns the text. The text sits behind
// a pointer so that even printing a struct that holds a Rationale without
// its methods shows an address, not the text.
type Rationale struct{ text *string }

// NewRationale wraps a text.
func NewRationale(text string) Rationale { return Rationale{text: &text} }

// Reveal returns the text. Call it only to store it.
func (r Rationale) Reveal() string {
	if r.text == nil {
		return ""
	}
	return *r.text
}

// Len is the text's length in bytes.
func (r Rationale) Len() int { return len(r.Reveal()) }

// ID is the rationale_id: the lowercase hex SHA-256 of the UTF-8 text.
func (r Rationale) ID() string { return RationaleID(r.Reveal()) }

// RationaleID is the lowercase hex SHA-256 of text.
func RationaleID(text string) string {
	sum := sha256.Sum256([]byte(text))
	return hex.EncodeToString(sum[:])
}

// String implements fmt.Stringer without the text.
func (r Rationale) String() string { return "<" + strconv.Itoa(r.Len()) + " bytes redacted>" }

// GoString implements fmt.GoStringer without the text.
func (r Rationale) GoString() string { return "reasoning.Rationale(" + r.String() + ")" }

// Format implements fmt.Formatter: every verb prints String.
func (r Rationale) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		_, _ = f.Write([]byte(r.GoString()))
		return
	}
	_, _ = f.Write([]byte(r.String()))
}

// LogValue implements slog.LogValuer without the text.
func (r Rationale) LogValue() slog.Value { return slog.StringValue(r.String()) }

// MarshalJSON implements json.Marshaler without the text.
func (r Rationale) MarshalJSON() ([]byte, error) { return []byte(strconv.Quote(r.String())), nil }

// MarshalText implements encoding.TextMarshaler without the text.
func (r Rationale) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

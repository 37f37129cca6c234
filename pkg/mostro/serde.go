package mostro

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file writes JSON the way Rust's serde_json::to_string does: compact,
// strings escaped only where JSON requires it (", \, control characters; no
// HTML escaping, no \u2028), f64 in ryu's shortest form with ".0" on
// integral values, integers as plain decimals.

const hexDigits = "0123456789abcdef"

// appendString appends s as a serde_json string literal. Invalid UTF-8 is
// replaced with U+FFFD (a Rust String cannot hold it).
func appendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"':
			dst = append(dst, '\\', '"')
		case '\\':
			dst = append(dst, '\\', '\\')
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendOptString appends a string or null.
func appendOptString(dst []byte, s *string) []byte {
	if s == nil {
		return append(dst, "null"...)
	}
	return appendString(dst, *s)
}

// appendF64 appends f as serde_json does (ryu): the shortest round-trip
// digits, decimal notation with ".0" for integral values when the decimal
// exponent is in [-5, 16], scientific ("1e21", "1.5e-7") otherwise.
// serde_json writes NaN and infinities as null.
func appendF64(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		if math.Signbit(f) {
			return append(dst, "-0.0"...)
		}
		return append(dst, "0.0"...)
	}
	// Shortest digits and exponent: d.ddddde±x.
	s := strconv.FormatFloat(f, 'e', -1, 64)
	neg := s[0] == '-'
	if neg {
		s = s[1:]
		dst = append(dst, '-')
	}
	epos := strings.IndexByte(s, 'e')
	mant, expStr := s[:epos], s[epos+1:]
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	length := len(digits)
	// ryu: value = digits × 10^k with k = exp - (length-1); kk = length + k.
	k := exp - (length - 1)
	kk := length + k
	switch {
	case k >= 0 && kk <= 16:
		dst = append(dst, digits...)
		for range k {
			dst = append(dst, '0')
		}
		dst = append(dst, '.', '0')
	case kk > 0 && kk <= 16:
		dst = append(dst, digits[:kk]...)
		dst = append(dst, '.')
		dst = append(dst, digits[kk:]...)
	case kk > -5 && kk <= 0:
		dst = append(dst, '0', '.')
		for range -kk {
			dst = append(dst, '0')
		}
		dst = append(dst, digits...)
	case length == 1:
		dst = append(dst, digits...)
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	default:
		dst = append(dst, digits[0], '.')
		dst = append(dst, digits[1:]...)
		dst = append(dst, 'e')
		dst = strconv.AppendInt(dst, int64(kk-1), 10)
	}
	return dst
}

// canonicalizeRaw re-emits an arbitrary JSON value in serde_json's compact
// form, keeping object key order. Integer literals are kept (normalising
// "-0"), non-integer numbers go through appendF64 (serde would hold them
// in an f64). Used for payload variants Serbero does not model.
func canonicalizeRaw(dst []byte, raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	out, err := canonicalValue(dst, dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("trailing data after JSON value")
	}
	return out, nil
}

func canonicalValue(dst []byte, dec *json.Decoder) ([]byte, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			dst = append(dst, '{')
			first := true
			for dec.More() {
				keyTok, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := keyTok.(string)
				if !ok {
					return nil, fmt.Errorf("object key is not a string")
				}
				if !first {
					dst = append(dst, ',')
				}
				first = false
				dst = appendString(dst, key)
				dst = append(dst, ':')
				if dst, err = canonicalValue(dst, dec); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return append(dst, '}'), nil
		case '[':
			dst = append(dst, '[')
			first := true
			for dec.More() {
				if !first {
					dst = append(dst, ',')
				}
				first = false
				if dst, err = canonicalValue(dst, dec); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return append(dst, ']'), nil
		}
		return nil, fmt.Errorf("unexpected delimiter %q", v)
	case string:
		return appendString(dst, v), nil
	case json.Number:
		lit := v.String()
		if !strings.ContainsAny(lit, ".eE") {
			if lit == "-0" {
				lit = "0"
			}
			return append(dst, lit...), nil
		}
		f, err := v.Float64()
		if err != nil {
			return nil, fmt.Errorf("number %s: %w", lit, err)
		}
		return appendF64(dst, f), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case nil:
		return append(dst, "null"...), nil
	}
	return nil, fmt.Errorf("unexpected token %T", tok)
}

package handoff

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Package is the reference's HandoffPackage (docs/architecture.md#the-handoff-queue): what a human
// solver needs to pick an escalated dispute up. It carries ids only, never
// rationale text.
type Package struct {
	// DisputeID is the Mostro dispute id.
	DisputeID string
	// SessionID is the mediation session id; empty for a dispute-scoped
	// handoff (no session was ever opened). The JSON key is then omitted.
	SessionID string
	// EmptySession is set by Decode when the payload carried session_id as
	// an empty string (not absent, not null). The handoff is then
	// dispute-scoped as far as storage goes (HasSession is false), but the
	// package keeps the key: Encode writes "session_id":"" and the DM says
	// "Session: " with an empty value, as the reference does. Producers
	// leave it false.
	EmptySession bool
	// Trigger is the snake_case escalation trigger (opaque to phase 4).
	Trigger string
	// EvidenceRefs are event ids and notes; never nil after Decode.
	EvidenceRefs []string
	// PromptBundleID names the prompt bundle, e.g. phase3-default.
	PromptBundleID string
	// PolicyHash is the bundle's policy hash (hex).
	PolicyHash string
	// RationaleRefs are rationale ids (SHA-256 hex), never rationale text;
	// never nil after Decode.
	RationaleRefs []string
	// AssembledAt is when the package was built, unix seconds.
	AssembledAt int64
}

// HasSession reports whether the package is session-scoped.
func (p Package) HasSession() bool { return p.SessionID != "" }

// HasSessionKey reports whether the package's JSON has a session_id key: a
// session, or an empty session id kept from the payload (EmptySession).
func (p Package) HasSessionKey() bool { return p.HasSession() || p.EmptySession }

// Encode returns the package as the reference serialises it: compact, one
// line, keys in the order dispute_id, session_id, trigger, evidence_refs,
// prompt_bundle_id, policy_hash, rationale_refs, assembled_at; session_id
// omitted when there is no session key (HasSessionKey; never null); arrays never null; no
// HTML escaping; UTF-8 as is (only '"', '\\' and control characters are
// escaped, as serde_json does).
func (p Package) Encode() []byte {
	var b bytes.Buffer
	b.Grow(256)
	b.WriteString(`{"dispute_id":`)
	writeString(&b, p.DisputeID)
	if p.HasSessionKey() {
		b.WriteString(`,"session_id":`)
		writeString(&b, p.SessionID)
	}
	b.WriteString(`,"trigger":`)
	writeString(&b, p.Trigger)
	b.WriteString(`,"evidence_refs":`)
	writeStrings(&b, p.EvidenceRefs)
	b.WriteString(`,"prompt_bundle_id":`)
	writeString(&b, p.PromptBundleID)
	b.WriteString(`,"policy_hash":`)
	writeString(&b, p.PolicyHash)
	b.WriteString(`,"rationale_refs":`)
	writeStrings(&b, p.RationaleRefs)
	b.WriteString(`,"assembled_at":`)
	b.WriteString(strconv.FormatInt(p.AssembledAt, 10))
	b.WriteByte('}')
	return b.Bytes()
}

const hexDigits = "0123456789abcdef"

// writeString writes s as a JSON string the way serde_json does. s must be
// valid UTF-8 (Decode guarantees it; Validate checks it for producers).
func writeString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hexDigits[c>>4])
			b.WriteByte(hexDigits[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

func writeStrings(b *bytes.Buffer, ss []string) {
	b.WriteByte('[')
	for i, s := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		writeString(b, s)
	}
	b.WriteByte(']')
}

// Validate checks what a producer must guarantee before Enqueue: the
// required strings are present, every string is valid UTF-8 without NUL
// (Postgres text cannot hold NUL).
func (p Package) Validate() error {
	if p.DisputeID == "" {
		return errors.New("handoff package: dispute_id is required")
	}
	if p.Trigger == "" {
		return errors.New("handoff package: trigger is required")
	}
	check := func(key, v string) error {
		if !utf8.ValidString(v) {
			return fmt.Errorf("handoff package: %s is not valid UTF-8", key)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("handoff package: %s contains NUL", key)
		}
		return nil
	}
	for key, v := range map[string]string{
		"dispute_id": p.DisputeID, "session_id": p.SessionID, "trigger": p.Trigger,
		"prompt_bundle_id": p.PromptBundleID, "policy_hash": p.PolicyHash,
	} {
		if err := check(key, v); err != nil {
			return err
		}
	}
	for i, v := range p.EvidenceRefs {
		if err := check(fmt.Sprintf("evidence_refs[%d]", i), v); err != nil {
			return err
		}
	}
	for i, v := range p.RationaleRefs {
		if err := check(fmt.Sprintf("rationale_refs[%d]", i), v); err != nil {
			return err
		}
	}
	return nil
}

// Decode parses a HandoffPackage strictly (docs/architecture.md#the-handoff-queue): the payload must
// be one JSON object; dispute_id, trigger, evidence_refs, prompt_bundle_id,
// policy_hash, rationale_refs and assembled_at are required with their
// exact types (string, string array, 64-bit integer; null is never
// accepted for them); session_id may be a string, null or absent (null and
// absent both mean no session; an empty string too, but it is kept as
// EmptySession); unknown keys are ignored; a repeated known
// key is an error. The error text is for operators (it lands in the
// deserialize_failed audit detail); its wording is not a contract.
func Decode(raw []byte) (Package, error) {
	var p Package
	if !utf8.Valid(raw) {
		return p, errors.New("invalid UTF-8 in payload")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return p, fmt.Errorf("expected a JSON object: %w", syntaxErr(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return p, fmt.Errorf("invalid type: %s, expected a JSON object", describe(tok))
	}
	const (
		fDispute = 1 << iota
		fSession
		fTrigger
		fEvidence
		fBundle
		fPolicy
		fRationale
		fAssembled
	)
	seen := 0
	once := func(bit int, key string) error {
		if seen&bit != 0 {
			return fmt.Errorf("duplicate field `%s`", key)
		}
		seen |= bit
		return nil
	}
	for dec.More() {
		kt, err := dec.Token()
		if err != nil {
			return p, syntaxErr(err)
		}
		key, _ := kt.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return p, syntaxErr(err)
		}
		switch key {
		case "dispute_id":
			if err = once(fDispute, key); err == nil {
				p.DisputeID, err = decodeString(key, raw)
			}
		case "session_id":
			if err = once(fSession, key); err == nil && !isNull(raw) {
				p.SessionID, err = decodeString(key, raw)
				p.EmptySession = err == nil && p.SessionID == ""
			}
		case "trigger":
			if err = once(fTrigger, key); err == nil {
				p.Trigger, err = decodeString(key, raw)
			}
		case "evidence_refs":
			if err = once(fEvidence, key); err == nil {
				p.EvidenceRefs, err = decodeStrings(key, raw)
			}
		case "prompt_bundle_id":
			if err = once(fBundle, key); err == nil {
				p.PromptBundleID, err = decodeString(key, raw)
			}
		case "policy_hash":
			if err = once(fPolicy, key); err == nil {
				p.PolicyHash, err = decodeString(key, raw)
			}
		case "rationale_refs":
			if err = once(fRationale, key); err == nil {
				p.RationaleRefs, err = decodeStrings(key, raw)
			}
		case "assembled_at":
			if err = once(fAssembled, key); err == nil {
				p.AssembledAt, err = decodeInt64(key, raw)
			}
		}
		if err != nil {
			return Package{}, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return Package{}, syntaxErr(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Package{}, errors.New("trailing characters after the JSON object")
	}
	for _, f := range []struct {
		bit int
		key string
	}{
		{fDispute, "dispute_id"}, {fTrigger, "trigger"}, {fEvidence, "evidence_refs"},
		{fBundle, "prompt_bundle_id"}, {fPolicy, "policy_hash"}, {fRationale, "rationale_refs"},
		{fAssembled, "assembled_at"},
	} {
		if seen&f.bit == 0 {
			return Package{}, fmt.Errorf("missing field `%s`", f.key)
		}
	}
	return p, nil
}

// BestEffortDisputeID returns the dispute id a malformed payload names: the
// string value of its top-level dispute_id key when the payload is a JSON
// object with one, else "unknown" (the reference's sentinel).
func BestEffortDisputeID(raw []byte) string {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return UnknownDisputeID
	}
	v, ok := obj["dispute_id"]
	if !ok {
		return UnknownDisputeID
	}
	s, err := decodeString("dispute_id", v)
	if err != nil {
		return UnknownDisputeID
	}
	return s
}

// UnknownDisputeID is the dispute id recorded for a payload that names none.
const UnknownDisputeID = "unknown"

func isNull(raw json.RawMessage) bool { return string(raw) == "null" }

func decodeString(key string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("invalid type for field `%s`: %s, expected a string", key, kindOf(raw))
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("field `%s`: %w", key, err)
	}
	return s, nil
}

func decodeStrings(key string, raw json.RawMessage) ([]string, error) {
	if len(raw) == 0 || raw[0] != '[' {
		return nil, fmt.Errorf("invalid type for field `%s`: %s, expected a sequence of strings", key, kindOf(raw))
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("field `%s`: %w", key, err)
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, err := decodeString(fmt.Sprintf("%s[%d]", key, i), it)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func decodeInt64(key string, raw json.RawMessage) (int64, error) {
	s := string(raw)
	if len(s) == 0 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')) {
		return 0, fmt.Errorf("invalid type for field `%s`: %s, expected i64", key, kindOf(raw))
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("invalid value for field `%s`: %s, expected i64", key, s)
	}
	return n, nil
}

func kindOf(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean " + string(raw)
	case '"':
		return "string"
	case '[':
		return "sequence"
	case '{':
		return "map"
	default:
		return "number " + string(raw)
	}
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		if v == '[' {
			return "sequence"
		}
		return string(v)
	case nil:
		return "null"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	default:
		return fmt.Sprintf("%T", tok)
	}
}

func syntaxErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("EOF while parsing a JSON value")
	}
	return err
}

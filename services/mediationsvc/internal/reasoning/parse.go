package reasoning

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"slices"
	"strings"
)

// ParseClassification parses the model's classification answer: one JSON
// object, strict on types and tokens. Required: "classification" (a known
// label) and "confidence" (a number, clamped to [0, 1]). Optional:
// "suggested_action" (a known action; absent counts as "" and is
// rejected), "suggested_action_detail", "buyer_clarification",
// "seller_clarification" (string or null), "rationale" (string) and
// "flags" (array of known flags). Unknown keys are ignored; a duplicated
// key, trailing data or a Markdown fence is malformed. ask_clarification
// needs both clarification texts non-empty after trimming (the trimmed
// texts are kept). Every failure is an *Error of category
// malformed_response.
func ParseClassification(content string) (ClassificationResponse, error) {
	fields, err := objectFields(content)
	if err != nil {
		return ClassificationResponse{}, err
	}
	var out ClassificationResponse

	label, err := requiredString(fields, "classification")
	if err != nil {
		return out, err
	}
	if !slices.Contains(Labels, Label(label)) {
		return out, Malformed("unknown classification %q", label)
	}
	out.Classification = Label(label)

	raw, ok := fields["confidence"]
	if !ok {
		return out, Malformed("missing field `confidence`")
	}
	var conf float64
	if !isNumber(raw) || json.Unmarshal(raw, &conf) != nil {
		return out, Malformed("`confidence` must be a number")
	}
	out.Confidence = math.Min(math.Max(conf, 0), 1)

	action, err := optionalString(fields, "suggested_action", false)
	if err != nil {
		return out, err
	}
	detail, err := optionalString(fields, "suggested_action_detail", true)
	if err != nil {
		return out, err
	}
	buyer, err := optionalString(fields, "buyer_clarification", true)
	if err != nil {
		return out, err
	}
	seller, err := optionalString(fields, "seller_clarification", true)
	if err != nil {
		return out, err
	}
	rationale, err := optionalString(fields, "rationale", false)
	if err != nil {
		return out, err
	}
	out.Rationale = NewRationale(rationale)

	switch ActionKind(action) {
	case ActionAskClarification:
		b, s := strings.TrimSpace(buyer), strings.TrimSpace(seller)
		if b == "" {
			return out, Malformed("ask_clarification requires non-empty buyer_clarification")
		}
		if s == "" {
			return out, Malformed("ask_clarification requires non-empty seller_clarification")
		}
		out.Action = Action{Kind: ActionAskClarification, BuyerText: b, SellerText: s}
	case ActionSummarize:
		out.Action = Action{Kind: ActionSummarize}
	case ActionEscalate:
		out.Action = Action{Kind: ActionEscalate, EscalateReason: detail}
	default:
		return out, Malformed("unknown suggested_action %q", action)
	}

	if raw, ok := fields["flags"]; ok {
		var flags []string
		if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) || json.Unmarshal(raw, &flags) != nil {
			return out, Malformed("`flags` must be an array of strings")
		}
		for _, f := range flags {
			if !slices.Contains(Flags, Flag(f)) {
				return out, Malformed("unknown flag %q", f)
			}
			out.Flags = append(out.Flags, Flag(f))
		}
	}
	return out, nil
}

// objectFields decodes one JSON object into its raw fields, refusing
// duplicate keys and anything after the object.
func objectFields(content string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(strings.NewReader(content))
	tok, err := dec.Token()
	if err != nil {
		return nil, Malformed("classification is not JSON: %v", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, Malformed("classification is not a JSON object")
	}
	fields := map[string]json.RawMessage{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, Malformed("classification is not JSON: %v", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, Malformed("classification is not JSON")
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, Malformed("classification is not JSON: %v", err)
		}
		if _, dup := fields[key]; dup {
			return nil, Malformed("duplicate field `%s`", key)
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, Malformed("classification is not JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Malformed("trailing data after the classification object")
	}
	return fields, nil
}

func isNumber(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && (raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'))
}

func requiredString(fields map[string]json.RawMessage, key string) (string, error) {
	raw, ok := fields[key]
	if !ok {
		return "", Malformed("missing field `%s`", key)
	}
	var s string
	if !bytes.HasPrefix(bytes.TrimSpace(raw), []byte(`"`)) || json.Unmarshal(raw, &s) != nil {
		return "", Malformed("`%s` must be a string", key)
	}
	return s, nil
}

// optionalString reads a string field; absent is "", and null is "" only
// when nullable.
func optionalString(fields map[string]json.RawMessage, key string, nullable bool) (string, error) {
	raw, ok := fields[key]
	if !ok {
		return "", nil
	}
	if nullable && string(bytes.TrimSpace(raw)) == "null" {
		return "", nil
	}
	return requiredString(fields, key)
}

// The summary markers.
const (
	markerNextStep  = "SUGGESTED_NEXT_STEP:"
	markerRationale = "RATIONALE:"
)

// ParseSummary parses the model's plain-text summary: the text before the
// first "SUGGESTED_NEXT_STEP:" (or "RATIONALE:") is the summary, the text
// between the two markers the next step, the text after "RATIONALE:" the
// rationale (all trimmed; markers are case-sensitive, the first occurrence
// counts). A missing marker leaves its field empty; RATIONALE before
// SUGGESTED_NEXT_STEP, or an empty summary, is malformed.
func ParseSummary(content string) (SummaryResponse, error) {
	next := strings.Index(content, markerNextStep)
	rat := strings.Index(content, markerRationale)
	var summary, step, rationale string
	switch {
	case next >= 0 && rat >= 0 && rat < next:
		return SummaryResponse{}, Malformed("summary markers out of order: RATIONALE: before SUGGESTED_NEXT_STEP:")
	case next >= 0 && rat >= 0:
		summary = content[:next]
		step = content[next+len(markerNextStep) : rat]
		rationale = content[rat+len(markerRationale):]
	case next >= 0:
		summary = content[:next]
		step = content[next+len(markerNextStep):]
	case rat >= 0:
		summary = content[:rat]
		rationale = content[rat+len(markerRationale):]
	default:
		summary = content
	}
	summary = strings.TrimSpace(summary)
	if summary == "" {
		return SummaryResponse{}, Malformed("empty summary body")
	}
	return SummaryResponse{
		SummaryText:       summary,
		SuggestedNextStep: strings.TrimSpace(step),
		Rationale:         NewRationale(strings.TrimSpace(rationale)),
	}, nil
}

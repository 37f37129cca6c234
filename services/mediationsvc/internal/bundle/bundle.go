// Package bundle loads the phase-3 prompt bundle: the five Markdown files
// that tell the model who it is and how to classify, escalate, word and
// template its messages. A bundle is identified by its prompt_bundle_id and
// its policy_hash, a SHA-256 over the five texts in a fixed order, so every
// session, message and rationale can say exactly which instructions
// produced it. See docs/mediation.md#prompt-bundle.
package bundle

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"unicode/utf8"
)

// ID is the prompt_bundle_id of every bundle: there is no knob for it.
const ID = "phase3-default"

// Paths are the five files of a bundle ([prompts] in the configuration).
type Paths struct {
	// System is system_instructions_path; the others follow their keys.
	System           string
	Classification   string
	EscalationPolicy string
	MediationStyle   string
	MessageTemplates string
}

// DefaultPaths are the [prompts] defaults, relative to the working
// directory.
func DefaultPaths() Paths {
	return Paths{
		System:           "./prompts/phase3-system.md",
		Classification:   "./prompts/phase3-classification.md",
		EscalationPolicy: "./prompts/phase3-escalation-policy.md",
		MediationStyle:   "./prompts/phase3-mediation-style.md",
		MessageTemplates: "./prompts/phase3-message-templates.md",
	}
}

// Bundle is one loaded prompt bundle. Its texts are sent verbatim to the
// model; nothing is templated by the loader.
type Bundle struct {
	// ID is the prompt_bundle_id (always ID for a loaded bundle).
	ID string
	// PolicyHash is the lowercase hex SHA-256 of the texts (see Hash).
	PolicyHash string

	// System is the system instructions (sent as the system message).
	System string
	// Classification is the classification policy.
	Classification string
	// Escalation is the escalation policy.
	Escalation string
	// MediationStyle is the mediation style guide.
	MediationStyle string
	// MessageTemplates are the message templates.
	MessageTemplates string
}

// New builds a bundle from its five texts and computes its hash.
func New(system, classification, escalation, mediationStyle, messageTemplates string) Bundle {
	b := Bundle{
		ID:               ID,
		System:           system,
		Classification:   classification,
		Escalation:       escalation,
		MediationStyle:   mediationStyle,
		MessageTemplates: messageTemplates,
	}
	b.PolicyHash = Hash(system, classification, escalation, mediationStyle, messageTemplates)
	return b
}

// Hash is the policy_hash of five texts: SHA-256 over
//
//	"serbero/phase3\0" "system\0" system "\0" "classification\0" classification "\0"
//	"escalation\0" escalation "\0" "mediation_style\0" mediation_style "\0"
//	"message_templates\0" message_templates
//
// (no trailing NUL), as lowercase hex. The order is fixed by logical name,
// whatever the order of the configuration keys, so hashes stay comparable
// with earlier deployments.
func Hash(system, classification, escalation, mediationStyle, messageTemplates string) string {
	h := sha256.New()
	h.Write([]byte("serbero/phase3\x00"))
	parts := []struct{ name, text string }{
		{"system", system},
		{"classification", classification},
		{"escalation", escalation},
		{"mediation_style", mediationStyle},
		{"message_templates", messageTemplates},
	}
	for i, p := range parts {
		h.Write([]byte(p.name))
		h.Write([]byte{0})
		h.Write([]byte(p.text))
		if i < len(parts)-1 {
			h.Write([]byte{0})
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Verify reports whether b's hash matches its texts (a bundle read back
// from storage must still be the one it claims to be).
func (b Bundle) Verify() error {
	got := Hash(b.System, b.Classification, b.Escalation, b.MediationStyle, b.MessageTemplates)
	if got != b.PolicyHash {
		return fmt.Errorf("prompt bundle %s: texts hash to %s", b.PolicyHash, got)
	}
	return nil
}

// Load reads the five files once. A missing, unreadable or non-UTF-8 file
// is an error naming the field and the path, in the reference's words:
// "failed to read prompt bundle file for `<field>` at <path>: <err>".
func Load(p Paths) (Bundle, error) {
	files := []struct {
		field, path string
	}{
		{"system_instructions_path", p.System},
		{"classification_policy_path", p.Classification},
		{"escalation_policy_path", p.EscalationPolicy},
		{"mediation_style_path", p.MediationStyle},
		{"message_templates_path", p.MessageTemplates},
	}
	texts := make([]string, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f.path)
		if err == nil && !utf8.Valid(b) {
			err = fmt.Errorf("stream did not contain valid UTF-8")
		}
		if err != nil {
			return Bundle{}, fmt.Errorf("failed to read prompt bundle file for `%s` at %s: %w", f.field, f.path, err)
		}
		texts[i] = string(b)
	}
	return New(texts[0], texts[1], texts[2], texts[3], texts[4]), nil
}

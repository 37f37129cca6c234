package relayconn

import (
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nbd-wtf/go-nostr"
)

// Message is one parsed relay-to-client NIP-01 message.
type Message struct {
	// Label is EVENT, EOSE, OK, CLOSED, NOTICE, AUTH or COUNT.
	Label string
	// SubscriptionID is set for EVENT, EOSE, CLOSED and COUNT.
	SubscriptionID string
	// Event is set for EVENT.
	Event *nostr.Event
	// EventID is set for OK.
	EventID string
	// OK is the verdict of an OK message.
	OK bool
	// Message is the text of OK, CLOSED and NOTICE (and AUTH's challenge).
	Message string
}

// ErrMalformed is wrapped by every ParseMessage error.
var ErrMalformed = errors.New("malformed relay message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ParseMessage parses a relay-to-client message: a JSON array whose first
// element is the label. Unknown labels and wrong shapes are errors
// (wrapping ErrMalformed); trailing elements are ignored, as relays add
// some. The event of an EVENT is decoded but not verified. A message that
// is not valid UTF-8 is malformed (JSON text is UTF-8; the event decoder
// would otherwise keep invalid bytes a re-encoding changes).
func ParseMessage(b []byte) (Message, error) {
	if !utf8.Valid(b) {
		return Message{}, malformed("not valid UTF-8")
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(b, &arr); err != nil {
		return Message{}, malformed("not a JSON array: %v", err)
	}
	if len(arr) == 0 {
		return Message{}, malformed("empty array")
	}
	var m Message
	if err := json.Unmarshal(arr[0], &m.Label); err != nil {
		return Message{}, malformed("label is not a string")
	}
	str := func(i int, what string, dst *string) error {
		if i >= len(arr) {
			return malformed("%s: missing %s", m.Label, what)
		}
		if err := json.Unmarshal(arr[i], dst); err != nil {
			return malformed("%s: %s is not a string", m.Label, what)
		}
		return nil
	}
	optStr := func(i int, dst *string) {
		if i < len(arr) {
			_ = json.Unmarshal(arr[i], dst) // a non-string reason reads as empty
		}
	}
	switch m.Label {
	case "EVENT":
		if err := str(1, "subscription id", &m.SubscriptionID); err != nil {
			return Message{}, err
		}
		if len(arr) < 3 || len(arr[2]) == 0 || arr[2][0] != '{' {
			return Message{}, malformed("EVENT: missing event object")
		}
		var ev nostr.Event
		if err := json.Unmarshal(arr[2], &ev); err != nil {
			return Message{}, malformed("EVENT: %v", err)
		}
		m.Event = &ev
	case "EOSE":
		if err := str(1, "subscription id", &m.SubscriptionID); err != nil {
			return Message{}, err
		}
	case "CLOSED":
		if err := str(1, "subscription id", &m.SubscriptionID); err != nil {
			return Message{}, err
		}
		optStr(2, &m.Message)
	case "OK":
		if err := str(1, "event id", &m.EventID); err != nil {
			return Message{}, err
		}
		if len(arr) < 3 || json.Unmarshal(arr[2], &m.OK) != nil {
			return Message{}, malformed("OK: missing verdict")
		}
		optStr(3, &m.Message)
	case "NOTICE":
		if err := str(1, "message", &m.Message); err != nil {
			return Message{}, err
		}
	case "AUTH":
		optStr(1, &m.Message)
	case "COUNT":
		if err := str(1, "subscription id", &m.SubscriptionID); err != nil {
			return Message{}, err
		}
	default:
		return Message{}, malformed("unknown label %q", m.Label)
	}
	return m, nil
}

package relayconn_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

func signedNote(t testing.TB, content string) nostr.Event {
	t.Helper()
	e := nostr.Event{Kind: 1, CreatedAt: 1_800_000_000, Tags: nostr.Tags{{"p", "ab"}}, Content: content}
	require.NoError(t, keys.Generate().Sign(&e))
	return e
}

func TestParseMessage(t *testing.T) {
	t.Parallel()
	ev := signedNote(t, "hello")
	evJSON, err := json.Marshal(ev)
	require.NoError(t, err)
	tests := []struct {
		name string
		in   string
		want relayconn.Message
		err  bool
	}{
		{"Event", `["EVENT","s:1",` + string(evJSON) + `]`, relayconn.Message{Label: "EVENT", SubscriptionID: "s:1", Event: &ev}, false},
		{"EOSE", `["EOSE","s:1"]`, relayconn.Message{Label: "EOSE", SubscriptionID: "s:1"}, false},
		{"OKTrue", `["OK","` + ev.ID + `",true,""]`, relayconn.Message{Label: "OK", EventID: ev.ID, OK: true}, false},
		{"OKFalse", `["OK","` + ev.ID + `",false,"blocked: no"]`, relayconn.Message{Label: "OK", EventID: ev.ID, Message: "blocked: no"}, false},
		{"OKWithoutReason", `["OK","x",true]`, relayconn.Message{Label: "OK", EventID: "x", OK: true}, false},
		{"Closed", `["CLOSED","s:1","error: too big"]`, relayconn.Message{Label: "CLOSED", SubscriptionID: "s:1", Message: "error: too big"}, false},
		{"ClosedWithoutReason", `["CLOSED","s:1"]`, relayconn.Message{Label: "CLOSED", SubscriptionID: "s:1"}, false},
		{"Notice", `["NOTICE","slow down"]`, relayconn.Message{Label: "NOTICE", Message: "slow down"}, false},
		{"Auth", `["AUTH","challenge"]`, relayconn.Message{Label: "AUTH", Message: "challenge"}, false},
		{"Count", `["COUNT","s:1",{"count":3}]`, relayconn.Message{Label: "COUNT", SubscriptionID: "s:1"}, false},
		{"TrailingElements", `["EOSE","s:1","extra"]`, relayconn.Message{Label: "EOSE", SubscriptionID: "s:1"}, false},
		{"NotJSON", `EVENT`, relayconn.Message{}, true},
		{"Object", `{"EVENT":1}`, relayconn.Message{}, true},
		{"Empty", `[]`, relayconn.Message{}, true},
		{"LabelNotString", `[1,"s"]`, relayconn.Message{}, true},
		{"UnknownLabel", `["HELLO","s"]`, relayconn.Message{}, true},
		{"EventWithoutEvent", `["EVENT","s:1"]`, relayconn.Message{}, true},
		{"EventNotObject", `["EVENT","s:1","x"]`, relayconn.Message{}, true},
		{"EventBadObject", `["EVENT","s:1",{"kind":"x"}]`, relayconn.Message{}, true},
		{"EventSubNotString", `["EVENT",1,` + string(evJSON) + `]`, relayconn.Message{}, true},
		{"EOSEWithoutID", `["EOSE"]`, relayconn.Message{}, true},
		{"OKWithoutVerdict", `["OK","x"]`, relayconn.Message{}, true},
		{"OKVerdictNotBool", `["OK","x","yes"]`, relayconn.Message{}, true},
		{"NoticeNotString", `["NOTICE",{}]`, relayconn.Message{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := relayconn.ParseMessage([]byte(tt.in))
			if tt.err {
				require.ErrorIs(t, err, relayconn.ErrMalformed)
				return
			}
			require.NoError(t, err)
			if tt.want.Event != nil {
				require.NotNil(t, got.Event)
				require.Equal(t, tt.want.Event.ID, got.Event.ID)
				require.Equal(t, tt.want.Event.Sig, got.Event.Sig)
				require.Equal(t, tt.want.Event.Tags, got.Event.Tags)
				ok, err := got.Event.CheckSignature()
				require.NoError(t, err)
				require.True(t, ok)
				got.Event, tt.want.Event = nil, nil
			}
			require.Equal(t, tt.want, got)
		})
	}
}

// FuzzParseMessage: any input is either a typed error (ErrMalformed) or a
// message of a known label whose fields survive re-encoding.
func FuzzParseMessage(f *testing.F) {
	ev := signedNote(f, "fuzz seed")
	evJSON, err := json.Marshal(ev)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		`["EVENT","s:1",` + string(evJSON) + `]`,
		`["EOSE","s:1"]`,
		`["OK","` + ev.ID + `",true,""]`,
		`["OK","` + ev.ID + `",false,"blocked: test"]`,
		`["CLOSED","s:1","auth-required: x"]`,
		`["NOTICE","hello"]`,
		`["AUTH","abc"]`,
		`["COUNT","s:1",{"count":1}]`,
		`["EVENT","s:1",{"id":"","pubkey":"","created_at":-1,"kind":-5,"tags":[[]],"content":"\u0000","sig":""}]`,
		`["EVENT","s:1",{"tags":[["p"],[1,2]]}]`,
		`[]`, `[null]`, `{}`, `"EVENT"`, ``, `[`, `["EVENT"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := relayconn.ParseMessage(b)
		if err != nil {
			if !errors.Is(err, relayconn.ErrMalformed) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		var again []byte
		switch m.Label {
		case "EVENT":
			if m.Event == nil {
				t.Fatal("EVENT without event")
			}
			again, err = json.Marshal([]any{"EVENT", m.SubscriptionID, m.Event})
		case "EOSE":
			again, err = json.Marshal([]any{"EOSE", m.SubscriptionID})
		case "CLOSED":
			again, err = json.Marshal([]any{"CLOSED", m.SubscriptionID, m.Message})
		case "OK":
			again, err = json.Marshal([]any{"OK", m.EventID, m.OK, m.Message})
		case "NOTICE":
			again, err = json.Marshal([]any{"NOTICE", m.Message})
		case "AUTH", "COUNT":
			return
		default:
			t.Fatalf("unknown label %q accepted", m.Label)
		}
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, err := relayconn.ParseMessage(again)
		if err != nil {
			t.Fatalf("re-encoded message does not parse: %v (%s)", err, again)
		}
		if m2.Label != m.Label || m2.SubscriptionID != m.SubscriptionID || m2.EventID != m.EventID || m2.OK != m.OK || m2.Message != m.Message {
			t.Fatalf("round trip changed the message: %+v -> %+v", m, m2)
		}
		if m.Event != nil && (m2.Event.ID != m.Event.ID || m2.Event.Content != m.Event.Content ||
			m2.Event.CreatedAt != m.Event.CreatedAt || m2.Event.Kind != m.Event.Kind || len(m2.Event.Tags) != len(m.Event.Tags)) {
			t.Fatalf("round trip changed the event: %+v -> %+v", m.Event, m2.Event)
		}
	})
}

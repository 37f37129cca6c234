package mostro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Nostr event kinds of the Mostro protocol.
const (
	KindTextNote = 1     // rumor of v1 protocol messages; inner event of chat lines
	KindSeal     = 13    // NIP-59 seal
	KindDirect   = 14    // v2 protocol messages, chat v2 outer events, NIP-17 rumors
	KindGiftWrap = 1059  // v1 protocol messages, legacy chat, NIP-17 DMs
	KindOrder    = 38383 // order (addressable, d = order id)
	KindRating   = 38384 // rating
	KindInfo     = 38385 // node info (d = Mostro pubkey)
	KindDispute  = 38386 // dispute (addressable, d = dispute id)
)

// Protocol versions, as the node's info event advertises them in its
// protocol_version tag and as MessageKind.Version carries them.
const (
	ProtocolV1 = 1 // NIP-59 gift wrap (kind 1059), rumor kind 1
	ProtocolV2 = 2 // signed kind 14, NIP-44 direct
)

// Wrapper is the externally tagged variant name of a Message. mostrod
// dispatches on the action only; the wrapper is cosmetic.
type Wrapper string

// The Message variants (kebab-case, as mostro-core serializes them).
const (
	WrapperOrder   Wrapper = "order"
	WrapperDispute Wrapper = "dispute"
	WrapperCantDo  Wrapper = "cant-do"
	WrapperRate    Wrapper = "rate"
	WrapperDM      Wrapper = "dm"
	WrapperRestore Wrapper = "restore"
)

func knownWrapper(w Wrapper) bool {
	switch w {
	case WrapperOrder, WrapperDispute, WrapperCantDo, WrapperRate, WrapperDM, WrapperRestore:
		return true
	}
	return false
}

// Message is mostro-core's Message: one wrapper around a MessageKind.
type Message struct {
	Wrapper Wrapper
	Kind    MessageKind
}

// MessageKind is mostro-core's MessageKind. Field order here is the
// serialization order.
type MessageKind struct {
	// Version is the protocol version (1 on v1 transport, 2 on v2).
	Version uint8
	// RequestID is the client's correlation id; nil serializes as null.
	RequestID *uint64
	// TradeIndex is the trade key index; nil serializes as null.
	TradeIndex *int64
	// ID is a lowercase hyphenated UUID, or "" when absent (then omitted).
	ID string
	// Action is the verb; unknown actions are kept as they came.
	Action Action
	// Payload is nil for null.
	Payload *Payload
}

// ErrMalformedMessage wraps every decoding failure of a message or tuple.
var ErrMalformedMessage = errors.New("malformed mostro message")

// Encode returns the canonical JSON of m, byte-identical to
// serde_json::to_string(&Message) in mostro-core.
func (m Message) Encode() ([]byte, error) {
	return m.AppendEncode(make([]byte, 0, 256))
}

// AppendEncode appends the canonical JSON of m to dst.
func (m Message) AppendEncode(dst []byte) ([]byte, error) {
	if !knownWrapper(m.Wrapper) {
		return nil, fmt.Errorf("encode message: unknown wrapper %q", m.Wrapper)
	}
	dst = append(dst, '{')
	dst = appendString(dst, string(m.Wrapper))
	dst = append(dst, ':')
	dst, err := m.Kind.appendEncode(dst)
	if err != nil {
		return nil, err
	}
	return append(dst, '}'), nil
}

// MustEncode is Encode for values known to be valid; it panics on error.
func (m Message) MustEncode() []byte {
	b, err := m.Encode()
	if err != nil {
		panic(err)
	}
	return b
}

func (k MessageKind) appendEncode(dst []byte) ([]byte, error) {
	dst = append(dst, `{"version":`...)
	dst = strconv.AppendUint(dst, uint64(k.Version), 10)
	dst = append(dst, `,"request_id":`...)
	if k.RequestID == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendUint(dst, *k.RequestID, 10)
	}
	dst = append(dst, `,"trade_index":`...)
	if k.TradeIndex == nil {
		dst = append(dst, "null"...)
	} else {
		dst = strconv.AppendInt(dst, *k.TradeIndex, 10)
	}
	if k.ID != "" {
		id, err := NormalizeUUID(k.ID)
		if err != nil {
			return nil, fmt.Errorf("encode message id: %w", err)
		}
		dst = append(dst, `,"id":`...)
		dst = appendString(dst, id)
	}
	if k.Action == "" {
		return nil, errors.New("encode message: empty action")
	}
	dst = append(dst, `,"action":`...)
	dst = appendString(dst, string(k.Action))
	dst = append(dst, `,"payload":`...)
	if k.Payload == nil {
		dst = append(dst, "null"...)
	} else {
		var err error
		if dst, err = k.Payload.appendEncode(dst); err != nil {
			return nil, err
		}
	}
	return append(dst, '}'), nil
}

// DecodeMessage parses a Message tolerantly: unknown actions, cant_do
// reasons and payload variants are kept, unknown MessageKind fields are
// ignored (as serde does). It fails on what mostro-core would fail on: not
// exactly one known wrapper key, a missing version or action, a bad UUID.
func DecodeMessage(b []byte) (Message, error) {
	var m Message
	if err := m.UnmarshalJSON(b); err != nil {
		return Message{}, err
	}
	return m, nil
}

// MarshalJSON is the canonical encoding.
func (m Message) MarshalJSON() ([]byte, error) { return m.Encode() }

// UnmarshalJSON decodes tolerantly; see DecodeMessage.
func (m *Message) UnmarshalJSON(b []byte) error {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(b, &outer); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	if len(outer) != 1 {
		return fmt.Errorf("%w: want one wrapper key, got %d", ErrMalformedMessage, len(outer))
	}
	for key, raw := range outer {
		w := Wrapper(key)
		if !knownWrapper(w) {
			return fmt.Errorf("%w: unknown wrapper %q", ErrMalformedMessage, key)
		}
		k, err := decodeKind(raw)
		if err != nil {
			return err
		}
		m.Wrapper, m.Kind = w, k
	}
	return nil
}

type wireKind struct {
	Version    *json.Number    `json:"version"`
	RequestID  *json.Number    `json:"request_id"`
	TradeIndex *json.Number    `json:"trade_index"`
	ID         *string         `json:"id"`
	Action     *string         `json:"action"`
	Payload    json.RawMessage `json:"payload"`
}

func decodeKind(raw []byte) (MessageKind, error) {
	var w wireKind
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return MessageKind{}, fmt.Errorf("%w: %w", ErrMalformedMessage, err)
	}
	var k MessageKind
	if w.Version == nil {
		return MessageKind{}, fmt.Errorf("%w: missing version", ErrMalformedMessage)
	}
	v, err := strconv.ParseUint(w.Version.String(), 10, 8)
	if err != nil {
		return MessageKind{}, fmt.Errorf("%w: version %s", ErrMalformedMessage, w.Version)
	}
	k.Version = uint8(v)
	if w.RequestID != nil {
		r, err := strconv.ParseUint(w.RequestID.String(), 10, 64)
		if err != nil {
			return MessageKind{}, fmt.Errorf("%w: request_id %s", ErrMalformedMessage, w.RequestID)
		}
		k.RequestID = &r
	}
	if w.TradeIndex != nil {
		t, err := strconv.ParseInt(w.TradeIndex.String(), 10, 64)
		if err != nil {
			return MessageKind{}, fmt.Errorf("%w: trade_index %s", ErrMalformedMessage, w.TradeIndex)
		}
		k.TradeIndex = &t
	}
	if w.ID != nil {
		id, err := NormalizeUUID(*w.ID)
		if err != nil {
			return MessageKind{}, fmt.Errorf("%w: id: %w", ErrMalformedMessage, err)
		}
		k.ID = id
	}
	if w.Action == nil || *w.Action == "" {
		return MessageKind{}, fmt.Errorf("%w: missing action", ErrMalformedMessage)
	}
	k.Action = Action(*w.Action)
	if len(w.Payload) > 0 && !bytes.Equal(bytes.TrimSpace(w.Payload), []byte("null")) {
		p, err := decodePayload(w.Payload)
		if err != nil {
			return MessageKind{}, err
		}
		k.Payload = p
	}
	return k, nil
}

// Inner returns the MessageKind (mostro-core get_inner_message_kind).
func (m Message) Inner() MessageKind { return m.Kind }

// Verify is mostro-core's MessageKind::verify for the actions a dispute
// flow uses: the actions that require an id fail without one, cant-do
// needs a cant_do payload, admin-settle/admin-cancel accept only a null or
// bond_resolution payload. Actions it does not model pass.
func (m Message) Verify() bool {
	k := m.Kind
	switch k.Action {
	case ActionAdminSettle, ActionAdminCancel:
		if k.ID == "" {
			return false
		}
		return k.Payload == nil || k.Payload.Name == "bond_resolution"
	case ActionCantDo:
		return k.Payload != nil && k.Payload.Name == PayloadCantDo
	case ActionRestoreSession:
		if k.ID != "" || k.RequestID != nil || k.TradeIndex != nil {
			return false
		}
		return k.Payload == nil || k.Payload.Name == "restore_data"
	case ActionNewOrder:
		return k.Payload != nil && k.Payload.Name == PayloadOrder
	case ActionRateUser:
		return k.Payload != nil && k.Payload.Name == "rating_user"
	case ActionPayInvoice, ActionAddInvoice:
		return k.ID != "" && k.Payload != nil && k.Payload.Name == "payment_request"
	case ActionPaymentFailed:
		return k.ID != "" && k.Payload != nil && k.Payload.Name == "payment_failed"
	}
	if requiresID(k.Action) {
		return k.ID != ""
	}
	return true
}

func requiresID(a Action) bool {
	switch a {
	case ActionTakeSell, ActionTakeBuy, ActionFiatSent, ActionFiatSentOk, ActionRelease, ActionReleased,
		ActionDispute, ActionAdminCanceled, ActionAdminSettled, ActionRate, ActionRateReceived,
		ActionAdminTakeDispute, ActionAdminTookDispute, ActionDisputeInitiatedByYou,
		ActionDisputeInitiatedByPeer, ActionWaitingBuyerInvoice, ActionPurchaseCompleted,
		ActionHoldInvoicePaymentAccepted, ActionHoldInvoicePaymentSettled,
		ActionHoldInvoicePaymentCanceled, ActionWaitingSellerToPay, ActionBuyerTookOrder,
		ActionBuyerInvoiceAccepted, ActionCooperativeCancelInitiatedByYou,
		ActionCooperativeCancelInitiatedByPeer, ActionCooperativeCancelAccepted, ActionCancel,
		ActionInvoiceUpdated, ActionAdminAddSolver, ActionSendDM, ActionTradePubkey, ActionCanceled:
		return true
	}
	return false
}

// NewAdminTakeDispute builds the admin-take-dispute request Serbero sends:
// the dispute wrapper, id = the dispute id, no request id, trade index or
// payload. version is the node's protocol version (1 or 2). It is the only
// outbound constructor: Serbero never builds admin-settle or admin-cancel.
func NewAdminTakeDispute(version uint8, disputeID string) (Message, error) {
	id, err := NormalizeUUID(disputeID)
	if err != nil {
		return Message{}, fmt.Errorf("admin-take-dispute: dispute id: %w", err)
	}
	if version != ProtocolV1 && version != ProtocolV2 {
		return Message{}, fmt.Errorf("admin-take-dispute: protocol version %d", version)
	}
	return Message{
		Wrapper: WrapperDispute,
		Kind:    MessageKind{Version: version, ID: id, Action: ActionAdminTakeDispute},
	}, nil
}

// IsForbiddenOutbound reports whether a message must never leave Serbero:
// admin-settle and admin-cancel move funds. The transports refuse to build
// them.
func (m Message) IsForbiddenOutbound() bool {
	return m.Kind.Action == ActionAdminSettle || m.Kind.Action == ActionAdminCancel
}

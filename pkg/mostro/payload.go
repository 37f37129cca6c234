package mostro

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Payload variant names (snake_case, as mostro-core serializes them).
const (
	PayloadDispute     = "dispute"
	PayloadCantDo      = "cant_do"
	PayloadPeer        = "peer"
	PayloadTextMessage = "text_message"
	PayloadOrder       = "order"
)

// Payload is mostro-core's Payload: an externally tagged variant. The
// variants Serbero reads are typed (Dispute, CantDo, Peer, TextMessage);
// every other variant, order included, keeps its raw JSON value, re-emitted
// canonically (see Order for a typed view of an order payload).
type Payload struct {
	// Name is the variant name, e.g. "dispute" or "payment_request".
	Name string
	// Dispute is set for Name == "dispute".
	Dispute *DisputePayload
	// CantDo is set for Name == "cant_do" with a reason; nil means a null
	// reason, which callers treat as invalid_action.
	CantDo *CantDoReason
	// Peer is set for Name == "peer".
	Peer *Peer
	// TextMessage is set for Name == "text_message".
	TextMessage *string
	// Raw is the variant's value for every other Name.
	Raw json.RawMessage
}

// DisputePayload is Payload::Dispute(Uuid, Option<SolverDisputeInfo>),
// serialized as ["<id>", info|null]. Some clients send a plain string id;
// that form decodes too (StringForm) and re-encodes as it came.
type DisputePayload struct {
	ID         string
	Info       *SolverDisputeInfo
	StringForm bool
}

// CantDoReasonOrDefault returns the reason of a cant_do payload, with a
// null reason read as invalid_action (mostro-core validate_response).
func (p *Payload) CantDoReasonOrDefault() CantDoReason {
	if p == nil || p.CantDo == nil {
		return CantDoInvalidAction
	}
	return *p.CantDo
}

// SolverDisputeInfo is what Mostro sends a solver that took a dispute
// (identical fields in mostro-core 0.9.1 and 0.14). ID is the ORDER id.
type SolverDisputeInfo struct {
	ID                     string
	Kind                   string
	Status                 string
	Hash                   *string
	Preimage               *string
	OrderPreviousStatus    string
	InitiatorPubkey        string
	BuyerPubkey            *string
	SellerPubkey           *string
	InitiatorFullPrivacy   bool
	CounterpartFullPrivacy bool
	InitiatorInfo          *UserInfo
	CounterpartInfo        *UserInfo
	Premium                int64
	PaymentMethod          string
	Amount                 int64
	FiatAmount             int64
	Fee                    int64
	RoutingFee             int64
	BuyerInvoice           *string
	InvoiceHeldAt          int64
	TakenAt                int64
	CreatedAt              int64
}

// UserInfo is mostro-core's UserInfo (a party's reputation).
type UserInfo struct {
	Rating        float64
	Reviews       int64
	OperatingDays uint64
	// Since is the Unix time of the party's first trade, sent by newer
	// mostro-core versions; nil when absent (then omitted). It is written
	// truncated to the start of its UTC day, as mostro-core serializes it.
	Since *uint64
}

// Peer is mostro-core's Peer.
type Peer struct {
	Pubkey     string
	Reputation *UserInfo
}

func (p *Payload) appendEncode(dst []byte) ([]byte, error) {
	if p.Name == "" {
		return nil, errors.New("encode payload: empty variant name")
	}
	dst = append(dst, '{')
	dst = appendString(dst, p.Name)
	dst = append(dst, ':')
	var err error
	switch p.Name {
	case PayloadDispute:
		if p.Dispute == nil {
			return nil, errors.New("encode payload: dispute variant without value")
		}
		if dst, err = p.Dispute.appendEncode(dst); err != nil {
			return nil, err
		}
	case PayloadCantDo:
		if p.CantDo == nil {
			dst = append(dst, "null"...)
		} else {
			dst = appendString(dst, string(*p.CantDo))
		}
	case PayloadPeer:
		if p.Peer == nil {
			return nil, errors.New("encode payload: peer variant without value")
		}
		dst = p.Peer.appendEncode(dst)
	case PayloadTextMessage:
		if p.TextMessage == nil {
			return nil, errors.New("encode payload: text_message variant without value")
		}
		dst = appendString(dst, *p.TextMessage)
	default:
		if len(p.Raw) == 0 {
			return nil, fmt.Errorf("encode payload: %s variant without value", p.Name)
		}
		if dst, err = canonicalizeRaw(dst, p.Raw); err != nil {
			return nil, fmt.Errorf("encode payload %s: %w", p.Name, err)
		}
	}
	return append(dst, '}'), nil
}

func (d *DisputePayload) appendEncode(dst []byte) ([]byte, error) {
	id, err := NormalizeUUID(d.ID)
	if err != nil {
		return nil, fmt.Errorf("encode dispute payload id: %w", err)
	}
	if d.StringForm && d.Info == nil {
		return appendString(dst, id), nil
	}
	dst = append(dst, '[')
	dst = appendString(dst, id)
	dst = append(dst, ',')
	if d.Info == nil {
		dst = append(dst, "null"...)
	} else if dst, err = d.Info.appendEncode(dst); err != nil {
		return nil, err
	}
	return append(dst, ']'), nil
}

func (s *SolverDisputeInfo) appendEncode(dst []byte) ([]byte, error) {
	id, err := NormalizeUUID(s.ID)
	if err != nil {
		return nil, fmt.Errorf("encode solver dispute info id: %w", err)
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, id)
	dst = append(dst, `,"kind":`...)
	dst = appendString(dst, s.Kind)
	dst = append(dst, `,"status":`...)
	dst = appendString(dst, s.Status)
	dst = append(dst, `,"hash":`...)
	dst = appendOptString(dst, s.Hash)
	dst = append(dst, `,"preimage":`...)
	dst = appendOptString(dst, s.Preimage)
	dst = append(dst, `,"order_previous_status":`...)
	dst = appendString(dst, s.OrderPreviousStatus)
	dst = append(dst, `,"initiator_pubkey":`...)
	dst = appendString(dst, s.InitiatorPubkey)
	dst = append(dst, `,"buyer_pubkey":`...)
	dst = appendOptString(dst, s.BuyerPubkey)
	dst = append(dst, `,"seller_pubkey":`...)
	dst = appendOptString(dst, s.SellerPubkey)
	dst = append(dst, `,"initiator_full_privacy":`...)
	dst = strconv.AppendBool(dst, s.InitiatorFullPrivacy)
	dst = append(dst, `,"counterpart_full_privacy":`...)
	dst = strconv.AppendBool(dst, s.CounterpartFullPrivacy)
	dst = append(dst, `,"initiator_info":`...)
	dst = s.InitiatorInfo.appendEncode(dst)
	dst = append(dst, `,"counterpart_info":`...)
	dst = s.CounterpartInfo.appendEncode(dst)
	dst = append(dst, `,"premium":`...)
	dst = strconv.AppendInt(dst, s.Premium, 10)
	dst = append(dst, `,"payment_method":`...)
	dst = appendString(dst, s.PaymentMethod)
	dst = append(dst, `,"amount":`...)
	dst = strconv.AppendInt(dst, s.Amount, 10)
	dst = append(dst, `,"fiat_amount":`...)
	dst = strconv.AppendInt(dst, s.FiatAmount, 10)
	dst = append(dst, `,"fee":`...)
	dst = strconv.AppendInt(dst, s.Fee, 10)
	dst = append(dst, `,"routing_fee":`...)
	dst = strconv.AppendInt(dst, s.RoutingFee, 10)
	dst = append(dst, `,"buyer_invoice":`...)
	dst = appendOptString(dst, s.BuyerInvoice)
	dst = append(dst, `,"invoice_held_at":`...)
	dst = strconv.AppendInt(dst, s.InvoiceHeldAt, 10)
	dst = append(dst, `,"taken_at":`...)
	dst = strconv.AppendInt(dst, s.TakenAt, 10)
	dst = append(dst, `,"created_at":`...)
	dst = strconv.AppendInt(dst, s.CreatedAt, 10)
	return append(dst, '}'), nil
}

func (u *UserInfo) appendEncode(dst []byte) []byte {
	if u == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, `{"rating":`...)
	dst = appendF64(dst, u.Rating)
	dst = append(dst, `,"reviews":`...)
	dst = strconv.AppendInt(dst, u.Reviews, 10)
	dst = append(dst, `,"operating_days":`...)
	dst = strconv.AppendUint(dst, u.OperatingDays, 10)
	if u.Since != nil {
		dst = append(dst, `,"since":`...)
		dst = strconv.AppendUint(dst, *u.Since-*u.Since%86400, 10)
	}
	return append(dst, '}')
}

func (p *Peer) appendEncode(dst []byte) []byte {
	dst = append(dst, `{"pubkey":`...)
	dst = appendString(dst, p.Pubkey)
	dst = append(dst, `,"reputation":`...)
	dst = p.Reputation.appendEncode(dst)
	return append(dst, '}')
}

func decodePayload(raw []byte) (*Payload, error) {
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(raw, &outer); err != nil {
		return nil, fmt.Errorf("%w: payload: %w", ErrMalformedMessage, err)
	}
	if len(outer) != 1 {
		return nil, fmt.Errorf("%w: payload: want one variant key, got %d", ErrMalformedMessage, len(outer))
	}
	var p Payload
	for name, val := range outer {
		p.Name = name
		val = bytes.TrimSpace(val)
		var err error
		switch name {
		case PayloadDispute:
			p.Dispute, err = decodeDisputePayload(val)
		case PayloadCantDo:
			var r *string
			if err = json.Unmarshal(val, &r); err == nil && r != nil {
				reason := CantDoReason(*r)
				p.CantDo = &reason
			}
		case PayloadPeer:
			p.Peer, err = decodePeer(val)
		case PayloadTextMessage:
			var s string
			if err = json.Unmarshal(val, &s); err == nil {
				p.TextMessage = &s
			}
		default:
			if !json.Valid(val) {
				err = errors.New("invalid JSON")
			}
			p.Raw = append(json.RawMessage(nil), val...)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: payload %s: %w", ErrMalformedMessage, name, err)
		}
	}
	return &p, nil
}

func decodeDisputePayload(val []byte) (*DisputePayload, error) {
	if len(val) > 0 && val[0] == '"' {
		var id string
		if err := json.Unmarshal(val, &id); err != nil {
			return nil, err
		}
		nid, err := NormalizeUUID(id)
		if err != nil {
			return nil, err
		}
		return &DisputePayload{ID: nid, StringForm: true}, nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(val, &arr); err != nil {
		return nil, err
	}
	if len(arr) < 1 || len(arr) > 3 {
		return nil, fmt.Errorf("want [id, info], got %d elements", len(arr))
	}
	var id string
	if err := json.Unmarshal(arr[0], &id); err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	nid, err := NormalizeUUID(id)
	if err != nil {
		return nil, err
	}
	d := &DisputePayload{ID: nid}
	// [id, info] is current; the short-lived [id, token, info] form of old
	// mostro-core versions carries the info last.
	if len(arr) >= 2 {
		last := bytes.TrimSpace(arr[len(arr)-1])
		if !bytes.Equal(last, []byte("null")) && len(last) > 0 && last[0] == '{' {
			info, err := decodeSolverDisputeInfo(last)
			if err != nil {
				return nil, fmt.Errorf("solver dispute info: %w", err)
			}
			d.Info = info
		}
	}
	return d, nil
}

type wireUserInfo struct {
	Rating        float64 `json:"rating"`
	Reviews       int64   `json:"reviews"`
	OperatingDays uint64  `json:"operating_days"`
	Since         *uint64 `json:"since"`
}

func (w *wireUserInfo) toUserInfo() *UserInfo {
	if w == nil {
		return nil
	}
	return &UserInfo{Rating: w.Rating, Reviews: w.Reviews, OperatingDays: w.OperatingDays, Since: w.Since}
}

type wireSolverDisputeInfo struct {
	ID                     string        `json:"id"`
	Kind                   string        `json:"kind"`
	Status                 string        `json:"status"`
	Hash                   *string       `json:"hash"`
	Preimage               *string       `json:"preimage"`
	OrderPreviousStatus    string        `json:"order_previous_status"`
	InitiatorPubkey        string        `json:"initiator_pubkey"`
	BuyerPubkey            *string       `json:"buyer_pubkey"`
	SellerPubkey           *string       `json:"seller_pubkey"`
	InitiatorFullPrivacy   bool          `json:"initiator_full_privacy"`
	CounterpartFullPrivacy bool          `json:"counterpart_full_privacy"`
	InitiatorInfo          *wireUserInfo `json:"initiator_info"`
	CounterpartInfo        *wireUserInfo `json:"counterpart_info"`
	Premium                int64         `json:"premium"`
	PaymentMethod          string        `json:"payment_method"`
	Amount                 int64         `json:"amount"`
	FiatAmount             int64         `json:"fiat_amount"`
	Fee                    int64         `json:"fee"`
	RoutingFee             int64         `json:"routing_fee"`
	BuyerInvoice           *string       `json:"buyer_invoice"`
	InvoiceHeldAt          int64         `json:"invoice_held_at"`
	TakenAt                int64         `json:"taken_at"`
	CreatedAt              int64         `json:"created_at"`
}

func decodeSolverDisputeInfo(val []byte) (*SolverDisputeInfo, error) {
	var w wireSolverDisputeInfo
	if err := json.Unmarshal(val, &w); err != nil {
		return nil, err
	}
	// The order id is a Uuid in mostro-core: serde refuses a missing or
	// empty one, and so do we (the encoder could not write it back).
	id, err := NormalizeUUID(w.ID)
	if err != nil {
		return nil, fmt.Errorf("id: %w", err)
	}
	return &SolverDisputeInfo{
		ID: id, Kind: w.Kind, Status: w.Status, Hash: w.Hash, Preimage: w.Preimage,
		OrderPreviousStatus: w.OrderPreviousStatus, InitiatorPubkey: w.InitiatorPubkey,
		BuyerPubkey: w.BuyerPubkey, SellerPubkey: w.SellerPubkey,
		InitiatorFullPrivacy: w.InitiatorFullPrivacy, CounterpartFullPrivacy: w.CounterpartFullPrivacy,
		InitiatorInfo: w.InitiatorInfo.toUserInfo(), CounterpartInfo: w.CounterpartInfo.toUserInfo(),
		Premium: w.Premium, PaymentMethod: w.PaymentMethod, Amount: w.Amount, FiatAmount: w.FiatAmount,
		Fee: w.Fee, RoutingFee: w.RoutingFee, BuyerInvoice: w.BuyerInvoice,
		InvoiceHeldAt: w.InvoiceHeldAt, TakenAt: w.TakenAt, CreatedAt: w.CreatedAt,
	}, nil
}

func decodePeer(val []byte) (*Peer, error) {
	var w struct {
		Pubkey     string        `json:"pubkey"`
		Reputation *wireUserInfo `json:"reputation"`
	}
	if err := json.Unmarshal(val, &w); err != nil {
		return nil, err
	}
	return &Peer{Pubkey: w.Pubkey, Reputation: w.Reputation.toUserInfo()}, nil
}

// SmallOrder is a read-only view of an order payload (mostro-core
// SmallOrder; its exact field set changes between versions, so the payload
// itself stays raw).
type SmallOrder struct {
	ID                string  `json:"id"`
	Kind              *string `json:"kind"`
	Status            *string `json:"status"`
	Amount            int64   `json:"amount"`
	FiatCode          string  `json:"fiat_code"`
	MinAmount         *int64  `json:"min_amount"`
	MaxAmount         *int64  `json:"max_amount"`
	FiatAmount        int64   `json:"fiat_amount"`
	PaymentMethod     string  `json:"payment_method"`
	Premium           int64   `json:"premium"`
	BuyerTradePubkey  *string `json:"buyer_trade_pubkey"`
	SellerTradePubkey *string `json:"seller_trade_pubkey"`
	BuyerInvoice      *string `json:"buyer_invoice"`
	CreatedAt         *int64  `json:"created_at"`
	ExpiresAt         *int64  `json:"expires_at"`
}

// Order decodes an order payload into a SmallOrder view.
func (p *Payload) Order() (SmallOrder, error) {
	var o SmallOrder
	if p == nil || p.Name != PayloadOrder {
		return o, errors.New("not an order payload")
	}
	if err := json.Unmarshal(p.Raw, &o); err != nil {
		return o, fmt.Errorf("order payload: %w", err)
	}
	return o, nil
}

// NormalizeUUID parses a UUID in any form the Rust uuid crate accepts
// (hyphenated, simple, braced, urn; any case) and returns it lowercase
// hyphenated, as serde serializes a Uuid.
func NormalizeUUID(s string) (string, error) {
	u := strings.ToLower(s)
	u = strings.TrimPrefix(u, "urn:uuid:")
	if strings.HasPrefix(u, "{") && strings.HasSuffix(u, "}") {
		u = u[1 : len(u)-1]
	}
	var hex32 string
	switch len(u) {
	case 36:
		if u[8] != '-' || u[13] != '-' || u[18] != '-' || u[23] != '-' {
			return "", fmt.Errorf("invalid uuid %q", s)
		}
		hex32 = u[0:8] + u[9:13] + u[14:18] + u[19:23] + u[24:]
	case 32:
		hex32 = u
	default:
		return "", fmt.Errorf("invalid uuid %q", s)
	}
	for i := 0; i < len(hex32); i++ {
		c := hex32[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", fmt.Errorf("invalid uuid %q", s)
		}
	}
	return hex32[0:8] + "-" + hex32[8:12] + "-" + hex32[12:16] + "-" + hex32[16:20] + "-" + hex32[20:], nil
}

package fakemostro

import (
	"errors"
	"strings"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/nbd-wtf/go-nostr/nip19"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/giftwrap"
	"github.com/serbero/serbero/pkg/mostro/keys"
	"github.com/serbero/serbero/pkg/mostro/pow"
	"github.com/serbero/serbero/pkg/mostro/transport"
)

// process runs mostrod's accept_event on one inbound event and dispatches
// what survives. Everything rejected is dropped silently and counted.
func (m *Mostro) process(evt *nostr.Event) {
	rcv, ok := m.accept(evt)
	if !ok {
		return
	}
	k := rcv.Message.Kind
	m.mu.Lock()
	m.requests = append(m.requests, Request{
		Action: k.Action, ID: k.ID, Sender: rcv.Sender, Identity: rcv.Identity,
		Version: int(rcv.Version), EventID: evt.ID, Message: rcv.Message,
	})
	m.notifyLocked()
	m.mu.Unlock()
	switch k.Action {
	case mostro.ActionAdminAddSolver:
		m.adminAddSolver(rcv)
	case mostro.ActionAdminTakeDispute:
		m.adminTakeDispute(rcv)
	case mostro.ActionAdminSettle, mostro.ActionAdminCancel:
		m.adminFinalize(rcv)
	default:
		m.drop(DropUnhandled)
	}
}

// accept is mostrod's intake order: PoW ≥ pow → kind == transport kind →
// event signature → (v2) replay and first-contact gate → unwrap → rumor /
// event created_at within 10 s → identity/signature rule → verify().
func (m *Mostro) accept(evt *nostr.Event) (transport.Received, bool) {
	m.mu.Lock()
	cfg := m.cfg
	firstContact := m.effectiveFirstContact()
	m.mu.Unlock()
	if pow.Check(evt.ID, cfg.PoW) != nil {
		m.drop(DropPoW)
		return transport.Received{}, false
	}
	switch {
	case cfg.AcceptBoth && (evt.Kind == mostro.KindGiftWrap || evt.Kind == mostro.KindDirect):
	case cfg.ProtocolVersion == mostro.ProtocolV1 && evt.Kind == mostro.KindGiftWrap:
	case cfg.ProtocolVersion == mostro.ProtocolV2 && evt.Kind == mostro.KindDirect:
	default:
		m.drop(DropKind)
		return transport.Received{}, false
	}
	if ok, _ := evt.CheckSignature(); !ok || !evt.CheckID() {
		m.drop(DropSignature)
		return transport.Received{}, false
	}
	now := m.now()
	if evt.Kind == mostro.KindDirect {
		m.mu.Lock()
		for id, at := range m.replay {
			if now.Sub(at) > ReplayWindow {
				delete(m.replay, id)
			}
		}
		if _, seen := m.replay[evt.ID]; seen {
			m.dropLocked(DropReplay)
			m.mu.Unlock()
			return transport.Received{}, false
		}
		m.replay[evt.ID] = now
		known := m.knownLocked(evt.PubKey)
		m.mu.Unlock()
		if !known && pow.Check(evt.ID, firstContact) != nil {
			m.drop(DropFirstContactPoW)
			return transport.Received{}, false
		}
	}
	rcv, err := transport.Open(*evt, m.keys, transport.OpenOptions{})
	switch {
	case errors.Is(err, transport.ErrNotForMe):
		m.drop(DropNotForMe)
		return transport.Received{}, false
	case errors.Is(err, transport.ErrRumorKind):
		m.drop(DropRumorKind)
		return transport.Received{}, false
	case errors.Is(err, transport.ErrBadSignature):
		m.drop(DropBadSignature)
		return transport.Received{}, false
	case err != nil:
		m.drop(DropMalformed)
		return transport.Received{}, false
	}
	if rcv.CreatedAt.Time().Before(now.Add(-FreshnessWindow)) {
		m.drop(DropStale)
		return transport.Received{}, false
	}
	if rcv.Identity != rcv.Sender && rcv.Tuple.Signature == "" {
		m.drop(DropMissingSignature)
		return transport.Received{}, false
	}
	if !rcv.Message.Verify() {
		m.drop(DropVerify)
		return transport.Received{}, false
	}
	return rcv, true
}

// knownLocked is the v2 gate's active set: trade keys of orders that are
// not finished, plus the solvers of disputes in progress.
func (m *Mostro) knownLocked(pubkey string) bool {
	for _, o := range m.orders {
		if o.Status == "success" || o.Status == "canceled-by-admin" || o.Status == "canceled" {
			continue
		}
		if o.BuyerPubkey == pubkey || o.SellerPubkey == pubkey {
			return true
		}
	}
	for _, d := range m.disputes {
		if d.Status == mostro.DisputeInProgress && d.Solver == pubkey {
			return true
		}
	}
	return false
}

func (m *Mostro) adminAddSolver(rcv transport.Received) {
	k := rcv.Message.Kind
	if k.Payload == nil || k.Payload.Name != mostro.PayloadTextMessage || k.Payload.TextMessage == nil {
		m.replyCantDo(rcv, mostro.CantDoInvalidTextMessage)
		return
	}
	if rcv.Identity != m.keys.PublicKey() {
		m.drop(DropAddSolverNotNode)
		return
	}
	npub, perm, reason := parseSolverPayload(*k.Payload.TextMessage)
	if reason != "" {
		m.replyCantDo(rcv, reason)
		return
	}
	prefix, v, err := nip19.Decode(npub)
	pk, _ := v.(string)
	if err != nil || prefix != "npub" || !keys.ValidPubkey(pk) {
		m.drop(DropAddSolverBadNpub)
		return
	}
	m.AddSolver(pk, perm)
	reply := mostro.Message{Wrapper: mostro.WrapperDispute, Kind: mostro.MessageKind{
		RequestID: k.RequestID, Action: mostro.ActionAdminAddSolver,
	}}
	m.reply(rcv, rcv.Sender, reply)
}

// parseSolverPayload is mostrod's grammar: "npub1…" (read-write),
// "npub1…:read", ":read-write" or ":write"; anything else after the colon
// is invalid_parameters, an empty payload invalid_text_message.
func parseSolverPayload(raw string) (string, Permission, mostro.CantDoReason) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", 0, mostro.CantDoInvalidTextMessage
	}
	parts := strings.Split(raw, ":")
	npub := strings.TrimSpace(parts[0])
	if npub == "" {
		return "", 0, mostro.CantDoInvalidTextMessage
	}
	if len(parts) > 2 {
		return "", 0, mostro.CantDoInvalidParameters
	}
	if len(parts) == 1 {
		return npub, PermReadWrite, ""
	}
	switch strings.TrimSpace(parts[1]) {
	case "read":
		return npub, PermRead, ""
	case "read-write", "write":
		return npub, PermReadWrite, ""
	}
	return "", 0, mostro.CantDoInvalidParameters
}

// canTakeLocked is admin_take_dispute's authorization matrix.
func (m *Mostro) canTakeLocked(identity string, d *Dispute) bool {
	if identity == m.keys.PublicKey() {
		return d.Status == mostro.DisputeInitiated || d.Status == mostro.DisputeInProgress
	}
	perm, isSolver := m.solvers[identity]
	if !isSolver {
		return false
	}
	switch d.Status {
	case mostro.DisputeInitiated:
		return true
	case mostro.DisputeInProgress:
		if d.Solver == identity {
			return true
		}
		holder, holderIsSolver := m.solvers[d.Solver]
		return perm == PermReadWrite && holderIsSolver && holder == PermRead
	}
	return false
}

func (m *Mostro) adminTakeDispute(rcv transport.Received) {
	k := rcv.Message.Kind
	m.mu.Lock()
	b := m.behavior
	d := m.disputes[k.ID]
	m.mu.Unlock()
	if b.SilentTakes {
		m.drop(DropSilentTake)
		return
	}
	if d == nil {
		m.drop(DropUnknownDispute)
		return
	}
	if b.TakeCantDo != "" {
		m.replyCantDo(rcv, b.TakeCantDo)
		return
	}
	m.mu.Lock()
	if !m.canTakeLocked(rcv.Identity, d) {
		m.mu.Unlock()
		m.replyCantDo(rcv, mostro.CantDoInvalidPubkey)
		return
	}
	d.Status, d.Solver, d.TakenAt = mostro.DisputeInProgress, rcv.Identity, m.now().Unix()
	o := *m.orders[d.OrderID]
	dd := *d
	m.notifyLocked()
	m.mu.Unlock()

	// Solver first, then buyer, then seller, then the in-progress revision.
	m.reply(rcv, rcv.Identity, m.tookDisputeMessage(dd, o, k.RequestID, b))
	notice := mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{
		RequestID: k.RequestID, ID: o.ID, Action: mostro.ActionAdminTookDispute,
		Payload: &mostro.Payload{Name: mostro.PayloadPeer, Peer: &mostro.Peer{Pubkey: rcv.Identity}},
	}}
	m.reply(rcv, o.BuyerPubkey, notice)
	m.reply(rcv, o.SellerPubkey, notice)
	m.publishRevision(dd.ID)
}

// TookDisputeMessage is the admin-took-dispute message the node would send
// the solver of an existing dispute now (for pre-publishing stale replies).
func (m *Mostro) TookDisputeMessage(disputeID string) mostro.Message {
	m.t.Helper()
	m.mu.Lock()
	d := m.disputes[disputeID]
	if d == nil {
		m.mu.Unlock()
		m.t.Fatalf("fakemostro: TookDisputeMessage: unknown dispute %s", disputeID)
		return mostro.Message{}
	}
	dd, o, b := *d, *m.orders[d.OrderID], m.behavior
	m.mu.Unlock()
	return m.tookDisputeMessage(dd, o, nil, b)
}

func (m *Mostro) tookDisputeMessage(d Dispute, o Order, requestID *uint64, b Behavior) mostro.Message {
	initiator, initiatorPrivate, counterpartPrivate := o.BuyerPubkey, o.BuyerFullPrivacy, o.SellerFullPrivacy
	initiatorInfo, counterpartInfo := o.BuyerInfo, o.SellerInfo
	if d.Initiator == "seller" {
		initiator, initiatorPrivate, counterpartPrivate = o.SellerPubkey, o.SellerFullPrivacy, o.BuyerFullPrivacy
		initiatorInfo, counterpartInfo = o.SellerInfo, o.BuyerInfo
	}
	if initiatorPrivate {
		initiatorInfo = nil
	}
	if counterpartPrivate {
		counterpartInfo = nil
	}
	buyer, seller := o.BuyerPubkey, o.SellerPubkey
	info := &mostro.SolverDisputeInfo{
		ID: o.ID, Kind: o.Kind, Status: o.Status, Hash: o.Hash, Preimage: o.Preimage,
		OrderPreviousStatus: o.PreviousStatus, InitiatorPubkey: initiator,
		BuyerPubkey: &buyer, SellerPubkey: &seller,
		InitiatorFullPrivacy: initiatorPrivate, CounterpartFullPrivacy: counterpartPrivate,
		InitiatorInfo: initiatorInfo, CounterpartInfo: counterpartInfo,
		Premium: o.Premium, PaymentMethod: o.PaymentMethod, Amount: o.Amount, FiatAmount: o.FiatAmount,
		Fee: o.Fee, RoutingFee: o.RoutingFee, BuyerInvoice: o.BuyerInvoice,
		InvoiceHeldAt: o.InvoiceHeldAt, TakenAt: d.TakenAt, CreatedAt: o.CreatedAt,
	}
	if b.OmitBuyerPubkey {
		info.BuyerPubkey = nil
	}
	if b.OmitSellerPubkey {
		info.SellerPubkey = nil
	}
	if b.SameBuyerSeller {
		info.SellerPubkey = &buyer
	}
	payloadID := d.ID
	if b.MismatchPayloadID {
		payloadID = NewUUID()
	}
	return mostro.Message{Wrapper: mostro.WrapperDispute, Kind: mostro.MessageKind{
		RequestID: requestID, ID: d.ID, Action: mostro.ActionAdminTookDispute,
		Payload: &mostro.Payload{Name: mostro.PayloadDispute, Dispute: &mostro.DisputePayload{ID: payloadID, Info: info}},
	}}
}

// adminFinalize handles admin-settle and admin-cancel (id = order id) with
// mostrod's permission checks, so a test can prove a read solver is
// refused. Serbero never sends these; tests craft them by hand.
func (m *Mostro) adminFinalize(rcv transport.Received) {
	k := rcv.Message.Kind
	m.mu.Lock()
	o := m.orders[k.ID]
	var d *Dispute
	for _, cand := range m.disputes {
		if o != nil && cand.OrderID == o.ID {
			d = cand
		}
	}
	if o == nil || d == nil {
		m.dropLocked(DropUnknownOrder)
		m.mu.Unlock()
		return
	}
	var reason mostro.CantDoReason
	switch {
	case d.Solver != rcv.Identity && d.Solver == m.keys.PublicKey():
		reason = mostro.CantDoDisputeTakenByAdmin
	case d.Solver != rcv.Identity:
		reason = mostro.CantDoIsNotYourDispute
	case rcv.Identity != m.keys.PublicKey() && m.solvers[rcv.Identity] != PermReadWrite:
		reason = mostro.CantDoNotAuthorized
	case o.Status != "dispute":
		reason = mostro.CantDoNotAllowedByStatus
	}
	if reason != "" {
		m.mu.Unlock()
		m.replyCantDo(rcv, reason)
		return
	}
	action := mostro.ActionAdminSettled
	if k.Action == mostro.ActionAdminCancel {
		action = mostro.ActionAdminCanceled
		o.Status, d.Status = "canceled-by-admin", mostro.DisputeSellerRefunded
	} else {
		o.Status, d.Status = "settled-hold-invoice", mostro.DisputeSettled
	}
	oo := *o
	m.notifyLocked()
	m.mu.Unlock()
	m.publishRevision(d.ID)
	done := mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{RequestID: k.RequestID, ID: oo.ID, Action: action}}
	m.reply(rcv, rcv.Sender, done)
	m.reply(rcv, oo.SellerPubkey, done)
	m.reply(rcv, oo.BuyerPubkey, done)
}

func (m *Mostro) replyCantDo(rcv transport.Received, reason mostro.CantDoReason) {
	k := rcv.Message.Kind
	r := reason
	m.reply(rcv, rcv.Sender, mostro.Message{Wrapper: mostro.WrapperCantDo, Kind: mostro.MessageKind{
		RequestID: k.RequestID, ID: k.ID, Action: mostro.ActionCantDo,
		Payload: &mostro.Payload{Name: mostro.PayloadCantDo, CantDo: &r},
	}})
}

// reply sends msg to a pubkey in the request's transport version, applying
// the scripted delay and duplicates.
func (m *Mostro) reply(rcv transport.Received, to string, msg mostro.Message) {
	m.mu.Lock()
	b := m.behavior
	m.mu.Unlock()
	version := int(rcv.Version)
	send := func() {
		for range 1 + b.DuplicateReplies {
			m.send(b, version, to, msg)
		}
	}
	if b.ReplyDelay <= 0 {
		send()
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case <-m.ctx.Done():
		case <-time.After(b.ReplyDelay):
			send()
		}
	}()
}

// SendMessage sends a protocol message from the node to a pubkey in the
// node's protocol version (for stale replies, unsolicited messages).
func (m *Mostro) SendMessage(to string, msg mostro.Message) nostr.Event {
	m.mu.Lock()
	b := m.behavior
	v := m.cfg.ProtocolVersion
	m.mu.Unlock()
	return m.send(b, v, to, msg)
}

// SendMessageFrom sends a protocol message signed by another key (a reply
// "from Mostro" that is not from the node).
func (m *Mostro) SendMessageFrom(from keys.Keys, to string, msg mostro.Message) nostr.Event {
	m.mu.Lock()
	b := m.behavior
	v := m.cfg.ProtocolVersion
	m.mu.Unlock()
	b.ReplyFrom = from
	return m.send(b, v, to, msg)
}

// send builds a reply like mostrod's send_dm: v1 gift wrap with a kind-1
// rumor and [msg, null] sealed by the node key; v2 kind 14 with [msg,
// null, null] and an expiration tag. Message.Version is set to the
// transport's version, as mostrod does.
func (m *Mostro) send(b Behavior, version int, to string, msg mostro.Message) nostr.Event {
	m.t.Helper()
	from := m.keys
	if !b.ReplyFrom.IsZero() {
		from = b.ReplyFrom
	}
	msg.Kind.Version = uint8(version)
	var evt nostr.Event
	var err error
	switch {
	case version == mostro.ProtocolV1 && b.LegacyRumorKind14:
		content, encErr := mostro.EncodeTupleV1(msg, "")
		if encErr != nil {
			m.t.Fatalf("fakemostro: encode reply: %v", encErr)
		}
		rumor := nostr.Event{PubKey: from.PublicKey(), CreatedAt: nostr.Timestamp(m.now().Unix()),
			Kind: mostro.KindDirect, Tags: nostr.Tags{{"p", to}}, Content: string(content)}
		evt, err = giftwrap.Wrap(m.ctx, rumor, from, to, giftwrap.Options{Now: m.cfg.Now})
	case version == mostro.ProtocolV1:
		evt, err = transport.BuildV1(m.ctx, msg, from, from, to, transport.Options{Now: m.cfg.Now})
	default:
		evt, err = transport.BuildV2(m.ctx, msg, from, from, to, transport.Options{
			Now: m.cfg.Now, Expiration: m.now().Add(m.cfg.DMExpiration),
		})
	}
	if err != nil {
		m.t.Errorf("fakemostro: build reply %s to %s: %v", msg.Kind.Action, to, err)
		return nostr.Event{}
	}
	m.mu.Lock()
	m.sent = append(m.sent, Sent{To: to, Message: msg, Event: evt})
	m.mu.Unlock()
	m.publish(evt)
	return evt
}

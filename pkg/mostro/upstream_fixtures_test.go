package mostro_test

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

// Interop fixtures from the unit tests of MostroP2P/mostro-core. They are data, not code: the strings the Rust tests feed to
// Message::from_json, and the JSON that serde_json::to_string produces for
// the values the Rust tests build with constructors (derived field by field
// from the serde attributes of the structs in the same files).
//
// Two byte comparisons are made for each fixture:
//
//   - canonical: what mostro-core itself emits for the value. Decoding it
//     and re-encoding it with our codec must give the same bytes; that is
//     the property signatures depend on (both sides hash the canonical
//     JSON).
//   - upstream: the raw string as written in the Rust test, when there is
//     one. The Rust tests write MessageKind fields in a non-canonical order
//     (id before request_id) and omit Option fields of SmallOrder. Our
//     codec decodes it and re-emits the MessageKind canonically; payload
//     variants Serbero does not model (order, payment_request,
//     payment_failed, restore_data) are kept raw and re-emitted compactly
//     in their received key order, so the missing SmallOrder nulls are NOT
//     filled in. For those, reencoded records exactly what our codec gives
//     and the difference to canonical is the documented limit of a raw
//     payload, not a bug: every message mostrod sends is already canonical.
const (
	upstreamUUID    = "308e1272-d5f4-47e6-bd97-3504baea9c23"
	upstreamNpub    = "npub1testjsf0runcqdht5apkfcalajxkf8txdxqqk5kgm0agc38ke4vsfsgzf8"
	upstreamInvoice = "lnbcrt78510n1pj59wmepp50677g8tffdqa2p8882y0x6newny5vtz0hjuyngdwv226nanv4uzsdqqcqzzsxqyz5vqsp5skn973360gp4yhlpmefwvul5hs58lkkl3u3ujvt57elmp4zugp4q9qyyssqw4nzlr72w28k4waycf27qvgzc9sp79sqlw83j56txltz4va44j7jda23ydcujj9y5k6k0rn5ms84w8wmcmcyk5g3mhpqepf7envhdccp72nz6e"
	// upstreamTradeKey is the trade key of mostro-core src/message.rs
	// test_message_payload_signature (a published test key).
	upstreamTradeKey = "110e43647eae221ab1da33ddc17fd6ff423f2b2f49d809b9ffa40794a2ab996c"
)

type upstreamFixture struct {
	name string
	// upstream is the raw JSON string of the Rust test ("" when the Rust
	// test builds the value with constructors only).
	upstream string
	// reencoded is our codec's encoding of upstream; "" means canonical.
	reencoded string
	// canonical is serde_json::to_string of the value in mostro-core.
	canonical string
	check     func(t *testing.T, m mostro.Message)
}

func upstreamFixtures() []upstreamFixture {
	return []upstreamFixture{
		{
			// mostro-core src/order.rs, tests::test_order_message, sample_message.
			name:      "NewOrder",
			upstream:  `{"order":{"version":1,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","request_id":1,"trade_index":2,"action":"new-order","payload":{"order":{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"pending","amount":100,"fiat_code":"eur","fiat_amount":100,"payment_method":"SEPA,Bank transfer","premium":1,"created_at":1627371434}}}}`,
			reencoded: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"new-order","payload":{"order":{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"pending","amount":100,"fiat_code":"eur","fiat_amount":100,"payment_method":"SEPA,Bank transfer","premium":1,"created_at":1627371434}}}}`,
			// SmallOrder: id/buyer_trade_pubkey/seller_trade_pubkey/buyer_invoice
			// skipped when None; min_amount, max_amount, expires_at written as null.
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"new-order","payload":{"order":{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"pending","amount":100,"fiat_code":"eur","min_amount":null,"max_amount":null,"fiat_amount":100,"payment_method":"SEPA,Bank transfer","premium":1,"created_at":1627371434,"expires_at":null}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.WrapperOrder, m.Wrapper)
				require.Equal(t, mostro.ActionNewOrder, m.Kind.Action)
				require.Equal(t, upstreamUUID, m.Kind.ID)
				require.Equal(t, uint64(1), *m.Kind.RequestID)
				require.Equal(t, int64(2), *m.Kind.TradeIndex)
				o, err := m.Kind.Payload.Order()
				require.NoError(t, err)
				require.Equal(t, upstreamUUID, o.ID)
				require.Equal(t, "sell", *o.Kind)
				require.Equal(t, "pending", *o.Status)
				require.Equal(t, int64(100), o.Amount)
				require.Equal(t, "eur", o.FiatCode)
				require.Equal(t, "SEPA,Bank transfer", o.PaymentMethod)
				require.Equal(t, int64(1627371434), *o.CreatedAt)
				require.Nil(t, o.MinAmount)
				require.Nil(t, o.ExpiresAt)
				require.True(t, m.Verify(), "upstream asserts message.verify()")
			},
		},
		{
			// mostro-core src/order.rs, tests::test_payment_request_payload_message,
			// sample_message (PaymentRequest(Option<SmallOrder>, String, Option<Amount>)).
			name:      "PayInvoice",
			upstream:  `{"order":{"version":1,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","request_id":1,"trade_index":3,"action":"pay-invoice","payload":{"payment_request":[{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"waiting-payment","amount":100,"fiat_code":"eur","fiat_amount":100,"payment_method":"Face to face","premium":1,"created_at":1627371434},"` + upstreamInvoice + `",null]}}}`,
			reencoded: `{"order":{"version":1,"request_id":1,"trade_index":3,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"pay-invoice","payload":{"payment_request":[{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"waiting-payment","amount":100,"fiat_code":"eur","fiat_amount":100,"payment_method":"Face to face","premium":1,"created_at":1627371434},"` + upstreamInvoice + `",null]}}}`,
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":3,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"pay-invoice","payload":{"payment_request":[{"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","kind":"sell","status":"waiting-payment","amount":100,"fiat_code":"eur","min_amount":null,"max_amount":null,"fiat_amount":100,"payment_method":"Face to face","premium":1,"created_at":1627371434,"expires_at":null},"` + upstreamInvoice + `",null]}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionPayInvoice, m.Kind.Action)
				require.Equal(t, upstreamUUID, m.Kind.ID)
				require.Equal(t, int64(3), *m.Kind.TradeIndex)
				require.Equal(t, "payment_request", m.Kind.Payload.Name)
				require.Contains(t, string(m.Kind.Payload.Raw), upstreamInvoice)
				require.True(t, m.Verify(), "upstream asserts message.verify()")
			},
		},
		{
			// The admin-cancel fixture of mostro-core src/message.rs is {"order":{"version":1,"id":…,"action":"admin-cancel","payload":null}};
			// the id here is the uuid every mostro-core message test uses.
			// Decoded only: Serbero has no way to build this message.
			name:      "AdminCancelLegacyNullPayload",
			upstream:  `{"order":{"version":1,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"admin-cancel","payload":null}}`,
			canonical: `{"order":{"version":1,"request_id":null,"trade_index":null,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"admin-cancel","payload":null}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionAdminCancel, m.Kind.Action)
				require.Equal(t, upstreamUUID, m.Kind.ID)
				require.Nil(t, m.Kind.Payload)
				require.Nil(t, m.Kind.RequestID)
				require.Nil(t, m.Kind.TradeIndex)
				require.True(t, m.Verify())
				require.True(t, m.IsForbiddenOutbound())
			},
		},
		{
			// mostro-core src/message.rs, test_restore_session_message:
			// Message::Restore(MessageKind::new(None, None, None, RestoreSession, None)),
			// PROTOCOL_VER = 1.
			name:      "RestoreSessionRequest",
			canonical: `{"restore":{"version":1,"request_id":null,"trade_index":null,"action":"restore-session","payload":null}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.WrapperRestore, m.Wrapper)
				require.Equal(t, mostro.ActionRestoreSession, m.Kind.Action)
				require.Empty(t, m.Kind.ID)
				require.Nil(t, m.Kind.Payload)
				require.True(t, m.Verify())
			},
		},
		{
			// Same test, the RestoreData reply (RestoredOrdersInfo and
			// RestoredDisputesInfo as in the mostro-core versions whose
			// disputes carry dispute_id, order_id, trade_index, status).
			name:      "RestoreSessionData",
			canonical: `{"restore":{"version":1,"request_id":null,"trade_index":null,"action":"restore-session","payload":{"restore_data":{"orders":[{"order_id":"308e1272-d5f4-47e6-bd97-3504baea9c23","trade_index":1,"status":"active"},{"order_id":"408e1272-d5f4-47e6-bd97-3504baea9c24","trade_index":2,"status":"success"}],"disputes":[{"dispute_id":"508e1272-d5f4-47e6-bd97-3504baea9c25","order_id":"308e1272-d5f4-47e6-bd97-3504baea9c23","trade_index":1,"status":"initiated"}]}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionRestoreSession, m.Kind.Action)
				require.Equal(t, "restore_data", m.Kind.Payload.Name)
				require.True(t, m.Verify())
			},
		},
		{
			// Later mostro-core src/message.rs test_restore_session_message:
			// RestoredDisputesInfo gained initiator (lowercase enum, Option)
			// and solver_pubkey (Option), both written as null when None.
			// Only decoding and the byte round trip are checked: those
			// versions also changed verify() to refuse any restore payload.
			name:      "RestoreSessionDataWithInitiator",
			canonical: `{"restore":{"version":1,"request_id":null,"trade_index":null,"action":"restore-session","payload":{"restore_data":{"orders":[{"order_id":"308e1272-d5f4-47e6-bd97-3504baea9c23","trade_index":1,"status":"active"},{"order_id":"408e1272-d5f4-47e6-bd97-3504baea9c24","trade_index":2,"status":"success"}],"disputes":[{"dispute_id":"508e1272-d5f4-47e6-bd97-3504baea9c25","order_id":"308e1272-d5f4-47e6-bd97-3504baea9c23","trade_index":1,"status":"initiated","initiator":"buyer","solver_pubkey":null},{"dispute_id":"608e1272-d5f4-47e6-bd97-3504baea9c26","order_id":"408e1272-d5f4-47e6-bd97-3504baea9c24","trade_index":2,"status":"in-progress","initiator":null,"solver_pubkey":"aabbccdd11223344aabbccdd11223344aabbccdd11223344aabbccdd11223344"},{"dispute_id":"708e1272-d5f4-47e6-bd97-3504baea9c27","order_id":"508e1272-d5f4-47e6-bd97-3504baea9c25","trade_index":3,"status":"initiated","initiator":"seller","solver_pubkey":null}]}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionRestoreSession, m.Kind.Action)
				require.Equal(t, "restore_data", m.Kind.Payload.Name)
			},
		},
		{
			// mostro-core src/message.rs, test_payment_failed_payload:
			// PaymentFailedInfo { payment_attempts: 3, payment_retries_interval: 60 }.
			name:      "PaymentFailed",
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"payment-failed","payload":{"payment_failed":{"payment_attempts":3,"payment_retries_interval":60}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionPaymentFailed, m.Kind.Action)
				require.Equal(t, "payment_failed", m.Kind.Payload.Name)
				require.JSONEq(t, `{"payment_attempts":3,"payment_retries_interval":60}`, string(m.Kind.Payload.Raw))
				require.True(t, m.Verify(), "upstream asserts message.verify()")
			},
		},
		{
			// mostro-core src/message.rs, test_peer_in_message (with reputation).
			name:      "PeerWithReputation",
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"fiat-sent-ok","payload":{"peer":{"pubkey":"npub1testjsf0runcqdht5apkfcalajxkf8txdxqqk5kgm0agc38ke4vsfsgzf8","reputation":{"rating":4.5,"reviews":10,"operating_days":30}}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.ActionFiatSentOk, m.Kind.Action)
				require.Equal(t, upstreamNpub, m.Kind.Payload.Peer.Pubkey)
				require.Equal(t, &mostro.UserInfo{Rating: 4.5, Reviews: 10, OperatingDays: 30}, m.Kind.Payload.Peer.Reputation)
				require.True(t, m.Verify())
			},
		},
		{
			// mostro-core src/message.rs, test_peer_in_message (without
			// reputation) and test_message_payload_signature.
			name:      "PeerWithoutReputation",
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"fiat-sent-ok","payload":{"peer":{"pubkey":"npub1testjsf0runcqdht5apkfcalajxkf8txdxqqk5kgm0agc38ke4vsfsgzf8","reputation":null}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, upstreamNpub, m.Kind.Payload.Peer.Pubkey)
				require.Nil(t, m.Kind.Payload.Peer.Reputation)
				require.True(t, m.Verify())
			},
		},
		{
			// mostro-core src/user.rs: UserInfo gained `since` (first-trade day,
			// skip_serializing_if None, serialized truncated to its UTC day).
			// Tests user_info_truncates_since_on_serialization (LATE_IN_DAY =
			// 1767225600 + 86399 → "since":1767225600) and
			// user_info_from_a_peer_without_since_parses
			// ({"rating":4.5,"reviews":10,"operating_days":30}, as above).
			name:      "PeerReputationSince",
			upstream:  `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"fiat-sent-ok","payload":{"peer":{"pubkey":"npub1testjsf0runcqdht5apkfcalajxkf8txdxqqk5kgm0agc38ke4vsfsgzf8","reputation":{"rating":4.5,"reviews":10,"operating_days":30,"since":1767311999}}}}}`,
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":2,"id":"308e1272-d5f4-47e6-bd97-3504baea9c23","action":"fiat-sent-ok","payload":{"peer":{"pubkey":"npub1testjsf0runcqdht5apkfcalajxkf8txdxqqk5kgm0agc38ke4vsfsgzf8","reputation":{"rating":4.5,"reviews":10,"operating_days":30,"since":1767225600}}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				rep := m.Kind.Payload.Peer.Reputation
				require.NotNil(t, rep.Since)
				require.Equal(t, uint64(1767225600), *rep.Since-*rep.Since%86400)
				require.Equal(t, uint64(30), rep.OperatingDays)
			},
		},
	}
}

func TestUpstreamFixtures(t *testing.T) {
	t.Parallel()
	for _, fx := range upstreamFixtures() {
		t.Run(fx.name, func(t *testing.T) {
			t.Parallel()
			m, err := mostro.DecodeMessage([]byte(fx.canonical))
			require.NoError(t, err, "canonical decodes")
			fx.check(t, m)
			require.Equal(t, fx.canonical, string(m.MustEncode()), "canonical re-encodes byte for byte")

			if fx.upstream == "" {
				return
			}
			m, err = mostro.DecodeMessage([]byte(fx.upstream))
			require.NoError(t, err, "upstream string decodes")
			fx.check(t, m)
			want := fx.reencoded
			if want == "" {
				want = fx.canonical
			}
			require.Equal(t, want, string(m.MustEncode()))
		})
	}
}

// TestUpstreamFixturesTyped builds the fixtures our codec models fully
// (MessageKind and the peer payload) from typed values and compares the
// encoding with mostro-core's bytes. admin-cancel is deliberately absent:
// Serbero never builds it.
func TestUpstreamFixturesTyped(t *testing.T) {
	t.Parallel()
	byName := map[string]string{}
	for _, fx := range upstreamFixtures() {
		byName[fx.name] = fx.canonical
	}
	req, idx := uint64(1), int64(2)
	peer := func(rep *mostro.UserInfo) mostro.Message {
		return mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{
			Version: 1, RequestID: &req, TradeIndex: &idx, ID: upstreamUUID, Action: mostro.ActionFiatSentOk,
			Payload: &mostro.Payload{Name: mostro.PayloadPeer, Peer: &mostro.Peer{Pubkey: upstreamNpub, Reputation: rep}},
		}}
	}
	require.Equal(t, byName["PeerWithReputation"],
		string(peer(&mostro.UserInfo{Rating: 4.5, Reviews: 10, OperatingDays: 30}).MustEncode()))
	require.Equal(t, byName["PeerWithoutReputation"], string(peer(nil).MustEncode()))
	lateInDay := uint64(1767225600 + 86399)
	require.Equal(t, byName["PeerReputationSince"],
		string(peer(&mostro.UserInfo{Rating: 4.5, Reviews: 10, OperatingDays: 30, Since: &lateInDay}).MustEncode()),
		"since is written truncated to its UTC day, as mostro-core serializes it")

	restore := mostro.Message{Wrapper: mostro.WrapperRestore, Kind: mostro.MessageKind{Version: 1, Action: mostro.ActionRestoreSession}}
	require.Equal(t, byName["RestoreSessionRequest"], string(restore.MustEncode()))
}

// TestUpstreamRestoreValidation mirrors mostro-core src/message.rs
// test_restore_session_message_validation as our Verify models it (the
// rule of the mostro-core versions that refuse id, request_id and
// trade_index on restore-session, and any payload but restore_data).
func TestUpstreamRestoreValidation(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"WithID":         `{"restore":{"version":1,"request_id":null,"trade_index":null,"id":"00000000-0000-0000-0000-000000000001","action":"restore-session","payload":null}}`,
		"WithRequestID":  `{"restore":{"version":1,"request_id":42,"trade_index":null,"action":"restore-session","payload":null}}`,
		"WithTradeIndex": `{"restore":{"version":1,"request_id":null,"trade_index":7,"action":"restore-session","payload":null}}`,
		"WrongPayload":   `{"restore":{"version":1,"request_id":null,"trade_index":null,"action":"restore-session","payload":{"text_message":"wrong payload"}}}`,
	} {
		m, err := mostro.DecodeMessage([]byte(in))
		require.NoError(t, err, name)
		require.False(t, m.Verify(), name)
		require.Equal(t, in, string(m.MustEncode()), name)
	}
}

// TestUpstreamSignature mirrors mostro-core src/message.rs
// test_message_payload_signature: the trade key signs SHA-256 of the
// message JSON. Schnorr signatures are randomized, so what is checked is
// that a signature made through our encoder verifies over mostro-core's
// bytes, and that one made over mostro-core's bytes verifies through our
// re-encoding of the decoded message.
func TestUpstreamSignature(t *testing.T) {
	t.Parallel()
	var canonical string
	for _, fx := range upstreamFixtures() {
		if fx.name == "PeerWithoutReputation" {
			canonical = fx.canonical
		}
	}
	k, err := keys.Parse(upstreamTradeKey)
	require.NoError(t, err)
	m, err := mostro.DecodeMessage([]byte(canonical))
	require.NoError(t, err)

	sig, err := mostro.SignMessage(k, m)
	require.NoError(t, err)
	require.True(t, keys.VerifyHash(k.PublicKey(), sha256.Sum256([]byte(canonical)), sig))

	sig2, err := k.SignHash(sha256.Sum256([]byte(canonical)))
	require.NoError(t, err)
	require.True(t, mostro.VerifyMessageSignature(k.PublicKey(), m, sig2))
	require.False(t, mostro.VerifyMessageSignature(keys.Generate().PublicKey(), m, sig2))
}

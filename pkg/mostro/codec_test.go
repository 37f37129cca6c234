package mostro_test

import (
	"crypto/sha256"
	"encoding/json"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
	"github.com/serbero/serbero/pkg/mostro/keys"
)

const (
	disputeID = "5b3c2f9e-3a8f-4bd6-9f7e-1c2d3e4f5a6b"
	orderID   = "0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0"
)

type mostroVectors struct {
	ChatKeys          map[string]string `json:"chat_keys"`
	CanonicalMessages map[string]string `json:"canonical_messages"`
}

func loadMostroVectors(t *testing.T) mostroVectors {
	t.Helper()
	b, err := os.ReadFile("testdata/mostro-vectors.json")
	require.NoError(t, err)
	var v mostroVectors
	require.NoError(t, json.Unmarshal(b, &v))
	require.NotEmpty(t, v.CanonicalMessages)
	return v
}

func TestCanonicalFixtures(t *testing.T) {
	t.Parallel()
	v := loadMostroVectors(t)
	fx := v.CanonicalMessages

	t.Run("AdminTakeDisputeConstructor", func(t *testing.T) {
		t.Parallel()
		m1, err := mostro.NewAdminTakeDispute(mostro.ProtocolV1, disputeID)
		require.NoError(t, err)
		b, err := m1.Encode()
		require.NoError(t, err)
		require.Equal(t, fx["admin_take_dispute_v1"], string(b))

		tuple, err := mostro.EncodeTupleV1(m1, "")
		require.NoError(t, err)
		require.Equal(t, fx["admin_take_dispute_v1_tuple"], string(tuple))

		m2, err := mostro.NewAdminTakeDispute(mostro.ProtocolV2, "5B3C2F9E3A8F4BD69F7E1C2D3E4F5A6B")
		require.NoError(t, err)
		tuple2, err := mostro.EncodeTupleV2(m2, "", nil)
		require.NoError(t, err)
		require.Equal(t, fx["admin_take_dispute_v2_tuple"], string(tuple2))
	})

	t.Run("RoundTrip", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"admin_take_dispute_v1_tuple", "admin_take_dispute_v2_tuple", "cant_do_reply", "party_notice_admin_took_dispute", "admin_took_dispute_reply"} {
			tup, err := mostro.DecodeTuple([]byte(fx[name]))
			require.NoError(t, err, name)
			var out []byte
			if tup.Len == 2 {
				out, err = mostro.EncodeTupleV1(tup.Message, tup.Signature)
			} else {
				out, err = mostro.EncodeTupleV2(tup.Message, tup.Signature, tup.Identity)
			}
			require.NoError(t, err, name)
			require.Equal(t, fx[name], string(out), name)
		}
		m, err := mostro.DecodeMessage([]byte(fx["admin_take_dispute_v1"]))
		require.NoError(t, err)
		require.Equal(t, fx["admin_take_dispute_v1"], string(m.MustEncode()))
	})

	t.Run("CantDo", func(t *testing.T) {
		t.Parallel()
		tup, err := mostro.DecodeTuple([]byte(fx["cant_do_reply"]))
		require.NoError(t, err)
		k := tup.Message.Kind
		require.Equal(t, mostro.WrapperCantDo, tup.Message.Wrapper)
		require.Equal(t, mostro.ActionCantDo, k.Action)
		require.Equal(t, disputeID, k.ID)
		require.Equal(t, mostro.CantDoInvalidPubkey, k.Payload.CantDoReasonOrDefault())
		require.True(t, tup.Message.Verify())
	})

	t.Run("PartyNotice", func(t *testing.T) {
		t.Parallel()
		tup, err := mostro.DecodeTuple([]byte(fx["party_notice_admin_took_dispute"]))
		require.NoError(t, err)
		k := tup.Message.Kind
		require.Equal(t, mostro.WrapperOrder, tup.Message.Wrapper)
		require.Equal(t, mostro.ActionAdminTookDispute, k.Action)
		require.Equal(t, orderID, k.ID)
		require.Equal(t, "2222222222222222222222222222222222222222222222222222222222222222", k.Payload.Peer.Pubkey)
		require.Nil(t, k.Payload.Peer.Reputation)
	})

	t.Run("AdminTookDispute", func(t *testing.T) {
		t.Parallel()
		tup, err := mostro.DecodeTuple([]byte(fx["admin_took_dispute_reply"]))
		require.NoError(t, err)
		require.Empty(t, tup.Signature)
		k := tup.Message.Kind
		require.Equal(t, disputeID, k.ID)
		d := k.Payload.Dispute
		require.Equal(t, disputeID, d.ID)
		info := d.Info
		require.NotNil(t, info)
		require.Equal(t, orderID, info.ID)
		require.Equal(t, "sell", info.Kind)
		require.Equal(t, "fiat-sent", info.OrderPreviousStatus)
		require.Equal(t, "3333333333333333333333333333333333333333333333333333333333333333", *info.BuyerPubkey)
		require.Equal(t, "4444444444444444444444444444444444444444444444444444444444444444", *info.SellerPubkey)
		require.Equal(t, &mostro.UserInfo{Rating: 4.5, Reviews: 10, OperatingDays: 30}, info.InitiatorInfo)
		require.Nil(t, info.CounterpartInfo)
		require.Nil(t, info.Hash)
		require.Equal(t, int64(21000), info.Amount)
		require.Equal(t, int64(1755780000), info.CreatedAt)
	})

	t.Run("DisputePayloadDocsForm", func(t *testing.T) {
		t.Parallel()
		raw := `{"order":{"version":1,"request_id":null,"trade_index":null,"id":"` + orderID +
			`","action":"dispute-initiated-by-you","payload":` + fx["dispute_payload_docs_form"] + `}}`
		m, err := mostro.DecodeMessage([]byte(raw))
		require.NoError(t, err)
		require.Equal(t, disputeID, m.Kind.Payload.Dispute.ID)
		require.True(t, m.Kind.Payload.Dispute.StringForm)
		require.Equal(t, raw, string(m.MustEncode()))

		arr := `{"order":{"version":1,"request_id":null,"trade_index":null,"id":"` + orderID +
			`","action":"dispute-initiated-by-you","payload":{"dispute":["` + disputeID + `",null]}}}`
		m, err = mostro.DecodeMessage([]byte(arr))
		require.NoError(t, err)
		require.Equal(t, disputeID, m.Kind.Payload.Dispute.ID)
		require.Nil(t, m.Kind.Payload.Dispute.Info)
		require.Equal(t, arr, string(m.MustEncode()))
	})

	t.Run("SignatureOverFixtureBytes", func(t *testing.T) {
		t.Parallel()
		// A signature made through the encoder verifies against the raw
		// fixture bytes: what mostrod hashes after re-serializing.
		k := keys.Generate()
		m, err := mostro.NewAdminTakeDispute(mostro.ProtocolV1, disputeID)
		require.NoError(t, err)
		sig, err := mostro.SignMessage(k, m)
		require.NoError(t, err)
		require.True(t, keys.VerifyHash(k.PublicKey(), sha256.Sum256([]byte(fx["admin_take_dispute_v1"])), sig))
		require.True(t, mostro.VerifyMessageSignature(k.PublicKey(), m, sig))
		require.False(t, mostro.VerifyMessageSignature(keys.Generate().PublicKey(), m, sig))
		other, err := mostro.NewAdminTakeDispute(mostro.ProtocolV2, disputeID)
		require.NoError(t, err)
		require.False(t, mostro.VerifyMessageSignature(k.PublicKey(), other, sig))
	})
}

func TestEncodeStrings(t *testing.T) {
	t.Parallel()
	text := "<b>&amp;</b> \"q\" \\ é 😀 \u2028 \x00\x01\x1f\x7f\b\f\n\r\t"
	m := mostro.Message{Wrapper: mostro.WrapperDM, Kind: mostro.MessageKind{
		Version: 2, ID: disputeID, Action: mostro.ActionSendDM,
		Payload: &mostro.Payload{Name: mostro.PayloadTextMessage, TextMessage: &text},
	}}
	want := `{"dm":{"version":2,"request_id":null,"trade_index":null,"id":"` + disputeID +
		`","action":"send-dm","payload":{"text_message":"<b>&amp;</b> \"q\" \\ é 😀 ` + "\u2028" +
		` \u0000\u0001\u001f` + "\x7f" + `\b\f\n\r\t"}}}`
	require.Equal(t, want, string(m.MustEncode()))
	back, err := mostro.DecodeMessage(m.MustEncode())
	require.NoError(t, err)
	require.Equal(t, text, *back.Kind.Payload.TextMessage)
}

func TestEncodeNumbers(t *testing.T) {
	t.Parallel()
	req, idx := uint64(18446744073709551615), int64(-9223372036854775808)
	m := mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{
		Version: 1, RequestID: &req, TradeIndex: &idx, Action: mostro.ActionRate,
	}}
	//nolint:testifylint // the canonical encoding is compared byte for byte (key order, number forms); JSONEq would accept any order
	require.Equal(t, `{"order":{"version":1,"request_id":18446744073709551615,"trade_index":-9223372036854775808,"action":"rate","payload":null}}`, string(m.MustEncode()))

	// f64 fields print as serde_json (ryu) does.
	cases := []struct {
		in   float64
		want string
	}{
		{4.5, "4.5"}, {5, "5.0"}, {0, "0.0"}, {-2.5, "-2.5"}, {0.1, "0.1"}, {100, "100.0"},
		{1e15, "1000000000000000.0"}, {1e16, "1e16"}, {1.5e16, "1.5e16"}, {1e21, "1e21"},
		{123456.789, "123456.789"}, {0.0001, "0.0001"}, {0.00001, "0.00001"}, {1e-6, "1e-6"},
		{1.5e-7, "1.5e-7"}, {1.7976931348623157e308, "1.7976931348623157e308"}, {5e-324, "5e-324"},
		{4.25, "4.25"}, {3.3333333333333335, "3.3333333333333335"},
	}
	for _, c := range cases {
		p := mostro.Peer{Pubkey: "x", Reputation: &mostro.UserInfo{Rating: c.in, Reviews: 1, OperatingDays: 2}}
		msg := mostro.Message{Wrapper: mostro.WrapperOrder, Kind: mostro.MessageKind{
			Version: 1, Action: mostro.ActionTradePubkey, Payload: &mostro.Payload{Name: mostro.PayloadPeer, Peer: &p},
		}}
		want := `{"order":{"version":1,"request_id":null,"trade_index":null,"action":"trade-pubkey","payload":{"peer":{"pubkey":"x","reputation":{"rating":` +
			c.want + `,"reviews":1,"operating_days":2}}}}}`
		require.Equal(t, want, string(msg.MustEncode()), "%v", c.in)
	}
}

func TestDecodeTolerant(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, canonical string
		check               func(t *testing.T, m mostro.Message)
	}{
		{
			name:      "UnknownActionAndFields",
			in:        `{"dispute":{"extra":1,"version":2,"action":"future-thing","id":"5B3C2F9E3A8F4BD69F7E1C2D3E4F5A6B"}}`,
			canonical: `{"dispute":{"version":2,"request_id":null,"trade_index":null,"id":"` + disputeID + `","action":"future-thing","payload":null}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.Action("future-thing"), m.Kind.Action)
				require.Nil(t, m.Kind.RequestID)
			},
		},
		{
			name:      "UnknownCantDoReason",
			in:        `{"cant-do":{"version":1,"request_id":7,"trade_index":null,"action":"cant-do","payload":{"cant_do":"brand_new_reason"}}}`,
			canonical: `{"cant-do":{"version":1,"request_id":7,"trade_index":null,"action":"cant-do","payload":{"cant_do":"brand_new_reason"}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, mostro.CantDoReason("brand_new_reason"), m.Kind.Payload.CantDoReasonOrDefault())
				require.Equal(t, uint64(7), *m.Kind.RequestID)
			},
		},
		{
			name:      "NullCantDoIsInvalidAction",
			in:        `{"cant-do":{"version":1,"request_id":null,"trade_index":null,"action":"cant-do","payload":{"cant_do":null}}}`,
			canonical: `{"cant-do":{"version":1,"request_id":null,"trade_index":null,"action":"cant-do","payload":{"cant_do":null}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Nil(t, m.Kind.Payload.CantDo)
				require.Equal(t, mostro.CantDoInvalidAction, m.Kind.Payload.CantDoReasonOrDefault())
			},
		},
		{
			name:      "UnknownPayloadKeptRaw",
			in:        `{"order":{"version":1,"request_id":null,"trade_index":2,"id":"` + orderID + `","action":"release","payload":{"bond_resolution": {"slash_seller" : false, "slash_buyer":true, "f": 1.50, "z": -0, "s":"<\u00e9>"}}}}`,
			canonical: `{"order":{"version":1,"request_id":null,"trade_index":2,"id":"` + orderID + `","action":"release","payload":{"bond_resolution":{"slash_seller":false,"slash_buyer":true,"f":1.5,"z":0,"s":"<é>"}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				require.Equal(t, "bond_resolution", m.Kind.Payload.Name)
			},
		},
		{
			name:      "OrderPayload",
			in:        `{"order":{"version":1,"request_id":1,"trade_index":1,"action":"new-order","payload":{"order":{"kind":"sell","status":"pending","amount":0,"fiat_code":"EUR","min_amount":null,"max_amount":null,"fiat_amount":100,"payment_method":"SEPA","premium":1,"created_at":null,"expires_at":null}}}}`,
			canonical: `{"order":{"version":1,"request_id":1,"trade_index":1,"action":"new-order","payload":{"order":{"kind":"sell","status":"pending","amount":0,"fiat_code":"EUR","min_amount":null,"max_amount":null,"fiat_amount":100,"payment_method":"SEPA","premium":1,"created_at":null,"expires_at":null}}}}`,
			check: func(t *testing.T, m mostro.Message) {
				o, err := m.Kind.Payload.Order()
				require.NoError(t, err)
				require.Equal(t, "EUR", o.FiatCode)
				require.Equal(t, int64(100), o.FiatAmount)
				require.True(t, m.Verify())
			},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := mostro.DecodeMessage([]byte(c.in))
			require.NoError(t, err)
			c.check(t, m)
			require.Equal(t, c.canonical, string(m.MustEncode()))
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	for name, in := range map[string]string{
		"TwoWrappers":      `{"order":{"version":1,"action":"rate"},"dispute":{"version":1,"action":"rate"}}`,
		"UnknownWrapper":   `{"chat":{"version":1,"action":"rate"}}`,
		"MissingAction":    `{"order":{"version":1}}`,
		"MissingVersion":   `{"order":{"action":"rate"}}`,
		"BadUUID":          `{"order":{"version":1,"id":"not-a-uuid","action":"rate"}}`,
		"NegativeRequest":  `{"order":{"version":1,"request_id":-1,"action":"rate"}}`,
		"VersionTooLarge":  `{"order":{"version":256,"action":"rate"}}`,
		"NotJSON":          `{"order":`,
		"TwoPayloadKeys":   `{"order":{"version":1,"action":"rate","payload":{"amount":1,"peer":{}}}}`,
		"DisputeArrayLong": `{"order":{"version":1,"action":"rate","payload":{"dispute":["` + disputeID + `",null,null,null]}}}`,
	} {
		_, err := mostro.DecodeMessage([]byte(in))
		require.ErrorIs(t, err, mostro.ErrMalformedMessage, name)
	}
	for name, in := range map[string]string{
		"OneElement":  `[{"order":{"version":1,"action":"rate"}}]`,
		"FourElement": `[{"order":{"version":1,"action":"rate"}},null,null,null]`,
		"BadSig":      `[{"order":{"version":1,"action":"rate"}},5]`,
		"BadProof":    `[{"order":{"version":1,"action":"rate"}},null,["x"]]`,
	} {
		_, err := mostro.DecodeTuple([]byte(in))
		require.ErrorIs(t, err, mostro.ErrMalformedMessage, name)
	}
}

func TestVerifyAndConstructor(t *testing.T) {
	t.Parallel()
	_, err := mostro.NewAdminTakeDispute(1, "nope")
	require.Error(t, err)
	_, err = mostro.NewAdminTakeDispute(3, disputeID)
	require.Error(t, err)

	m, err := mostro.NewAdminTakeDispute(2, disputeID)
	require.NoError(t, err)
	require.True(t, m.Verify())
	require.False(t, m.IsForbiddenOutbound())
	m.Kind.ID = ""
	require.False(t, m.Verify(), "admin-take-dispute needs an id")

	settle, err := mostro.DecodeMessage([]byte(`{"order":{"version":1,"request_id":null,"trade_index":null,"id":"` + orderID + `","action":"admin-settle","payload":null}}`))
	require.NoError(t, err)
	require.True(t, settle.Verify())
	require.True(t, settle.IsForbiddenOutbound())

	addSolver, err := mostro.DecodeMessage([]byte(`{"dispute":{"version":1,"request_id":123,"trade_index":null,"action":"admin-add-solver","payload":{"text_message":"npub1x"}}}`))
	require.NoError(t, err)
	require.False(t, addSolver.Verify(), "admin-add-solver needs an id")

	cantDo, err := mostro.DecodeMessage([]byte(`{"cant-do":{"version":1,"request_id":null,"trade_index":null,"action":"cant-do","payload":null}}`))
	require.NoError(t, err)
	require.False(t, cantDo.Verify(), "cant-do needs a cant_do payload")
}

func TestIdentityProof(t *testing.T) {
	t.Parallel()
	identity, trade := keys.Generate(), keys.Generate()
	m, err := mostro.NewAdminTakeDispute(2, disputeID)
	require.NoError(t, err)
	proof, err := mostro.SignIdentityProof(identity, trade.PublicKey(), m)
	require.NoError(t, err)
	require.Equal(t, identity.PublicKey(), proof.Pubkey)
	require.True(t, mostro.VerifyIdentityProof(*proof, trade.PublicKey(), m))
	require.False(t, mostro.VerifyIdentityProof(*proof, keys.Generate().PublicKey(), m), "grafted onto another trade key")
	tuple, err := mostro.EncodeTupleV2(m, "", proof)
	require.NoError(t, err)
	back, err := mostro.DecodeTuple(tuple)
	require.NoError(t, err)
	require.Equal(t, proof, back.Identity)
}

package mostro_test

import (
	"testing"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro"
)

func TestParseNodeInfo(t *testing.T) {
	t.Parallel()
	evt := nostr.Event{Kind: 38385, PubKey: "ab", Tags: nostr.Tags{
		{"d", "ab"}, {"mostro_version", "0.18.7"}, {"pow", "6"}, {"pow_first_contact", "4"}, {"protocol_version", "2"}, {"z", "info"},
	}}
	info, err := mostro.ParseNodeInfo(evt)
	require.NoError(t, err)
	require.Equal(t, 2, info.ProtocolVersion)
	require.Equal(t, 6, info.PoW)
	require.Equal(t, 6, info.PoWFirstContact, "never below pow")
	require.Equal(t, "0.18.7", info.MostroVersion)

	evt.Tags = nostr.Tags{{"d", "ab"}, {"pow", "3"}}
	info, err = mostro.ParseNodeInfo(evt)
	require.NoError(t, err)
	require.Equal(t, 1, info.ProtocolVersion, "missing protocol_version means v1")
	require.False(t, info.ProtocolVersionTagged)
	require.Equal(t, 3, info.PoWFirstContact)

	require.True(t, info.Supported())

	evt.Tags = nostr.Tags{{"protocol_version", "3"}}
	info, err = mostro.ParseNodeInfo(evt)
	require.NoError(t, err)
	require.Equal(t, 3, info.ProtocolVersion, "advertised as is")
	require.False(t, info.Supported())

	evt.Tags = nostr.Tags{{"protocol_version", "two"}}
	_, err = mostro.ParseNodeInfo(evt)
	require.ErrorIs(t, err, mostro.ErrNotNodeInfo)
	_, err = mostro.ParseNodeInfo(nostr.Event{Kind: 1})
	require.ErrorIs(t, err, mostro.ErrNotNodeInfo)
}

func TestParseDisputeEvent(t *testing.T) {
	t.Parallel()
	evt := nostr.Event{Kind: 38386, CreatedAt: 1755800000, Tags: nostr.Tags{
		{"d", disputeID}, {"expiration", "1758392000"}, {"s", "initiated"}, {"initiator", "buyer"},
		{"created_at", "1755799990"}, {"y", "mostro", "name"}, {"z", "dispute"},
	}}
	d, err := mostro.ParseDisputeEvent(evt)
	require.NoError(t, err)
	require.Equal(t, disputeID, d.DisputeID)
	require.Equal(t, mostro.DisputeInitiated, d.Status)
	require.Equal(t, "buyer", d.Initiator)
	require.Equal(t, int64(1755799990), d.OpenedAt)
	require.Equal(t, int64(1758392000), d.Expiration)

	evt.Tags = nostr.Tags{{"z", "dispute"}, {"published_at", "5"}, {"s", "cooperatively-canceled"}, {"d", disputeID}}
	d, err = mostro.ParseDisputeEvent(evt)
	require.NoError(t, err)
	require.Equal(t, "unknown", d.Initiator)
	require.False(t, d.InitiatorTagged)
	require.Equal(t, int64(5), d.OpenedAt)
	require.True(t, d.Status.Terminal())

	_, err = mostro.ParseDisputeEvent(nostr.Event{Kind: 38386, Tags: nostr.Tags{{"s", "initiated"}}})
	require.ErrorIs(t, err, mostro.ErrNotDisputeEvent)

	a := nostr.Event{CreatedAt: 10, ID: "bb"}
	b := nostr.Event{CreatedAt: 10, ID: "aa"}
	require.True(t, mostro.Newer(b, a), "same second: lower id wins")
	require.True(t, mostro.Newer(nostr.Event{CreatedAt: 11, ID: "ff"}, b))
}

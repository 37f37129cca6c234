package message_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/message"
)

func TestBodies(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, got, want string
	}{
		{"initial buyer", message.Initial("dispute-001", "buyer", 1745000000),
			"New Mostro dispute requires attention.\ndispute_id: dispute-001\ninitiator: buyer\nevent_timestamp: 1745000000\nstatus: initiated"},
		{"initial unknown initiator", message.Initial("d-2", "unknown", 7),
			"New Mostro dispute requires attention.\ndispute_id: d-2\ninitiator: unknown\nevent_timestamp: 7\nstatus: initiated"},
		{"re-notification", message.Renotification("dispute-001", 305),
			"Mostro dispute is still unattended.\ndispute_id: dispute-001\nlifecycle_state: notified\ntime_elapsed_seconds: 305"},
		{"assignment unknown", message.Assignment("dispute-001", ""),
			"Mostro dispute has been taken.\ndispute_id: dispute-001\nassigned_solver: unknown\nlifecycle_state: taken"},
		{"assignment known", message.Assignment("dispute-001", "ab12"),
			"Mostro dispute has been taken.\ndispute_id: dispute-001\nassigned_solver: ab12\nlifecycle_state: taken"},
		{"invalid pubkey", message.InvalidPubkeyError("bad hex"), "invalid pubkey: bad hex"},
		{"send failed", message.SendFailedError("no relay accepted"), "notification error: gift-wrap send failed: no relay accepted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			require.Equal(t, tc.want, tc.got)
		})
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	a := message.IdempotencyKey(message.TypeInitial, 0, "d", "s1")
	require.Equal(t, a, message.IdempotencyKey(message.TypeInitial, 0, "d", "s1"), "stable")
	require.NotEqual(t, a, message.IdempotencyKey(message.TypeInitial, 0, "d", "s2"), "per solver")
	require.NotEqual(t, a, message.IdempotencyKey(message.TypeInitial, 0, "d2", "s1"), "per dispute")
	require.NotEqual(t, a, message.IdempotencyKey(message.TypeAssignment, 0, "d", "s1"), "per type")
	require.NotEqual(t, message.IdempotencyKey(message.TypeRenotification, 1, "d", "s1"),
		message.IdempotencyKey(message.TypeRenotification, 2, "d", "s1"), "per period")
	// No ambiguity between (ab, c) and (a, bc).
	require.NotEqual(t, message.IdempotencyKey(message.TypeInitial, 0, "ab", "c"), message.IdempotencyKey(message.TypeInitial, 0, "a", "bc"))
	long := string(make([]byte, 10000))
	require.LessOrEqual(t, len(message.IdempotencyKey(message.TypeRenotification, 1<<62, long, long)), 256)
	require.Regexp(t, `^intakesvc:re-notification:3:[0-9a-f]{64}$`, message.IdempotencyKey(message.TypeRenotification, 3, "d", "s"))
}

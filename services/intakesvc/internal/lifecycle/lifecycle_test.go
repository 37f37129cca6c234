package lifecycle_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

func TestTransitions(t *testing.T) {
	t.Parallel()
	// The allowed set of docs/intake.md#the-lifecycle, written out independently of the
	// table in the package.
	legal := map[[2]lifecycle.State]bool{
		{"new", "notified"}: true, {"new", "taken"}: true, {"new", "resolved"}: true,
		{"notified", "notified"}: true, {"notified", "taken"}: true, {"notified", "escalated"}: true,
		{"notified", "resolved"}: true, {"taken", "waiting"}: true, {"taken", "escalated"}: true,
		{"taken", "resolved"}: true, {"waiting", "taken"}: true, {"waiting", "escalated"}: true,
		{"waiting", "resolved"}: true, {"escalated", "resolved"}: true,
	}
	require.Len(t, legal, 14)
	require.Len(t, lifecycle.Pairs(), 14)
	for _, from := range lifecycle.States {
		for _, to := range lifecycle.States {
			t.Run(string(from)+"->"+string(to), func(t *testing.T) {
				want := legal[[2]lifecycle.State{from, to}]
				require.Equal(t, want, lifecycle.CanTransition(from, to))
				err := lifecycle.Check(from, to)
				if want {
					require.NoError(t, err)
					return
				}
				require.ErrorIs(t, err, lifecycle.ErrInvalidTransition)
				var te *lifecycle.TransitionError
				require.ErrorAs(t, err, &te)
				require.Equal(t, "invalid state transition: "+string(from)+" -> "+string(to), err.Error())
			})
		}
	}
}

func TestNotifiedToNewIsRejected(t *testing.T) {
	t.Parallel()
	require.EqualError(t, lifecycle.Check(lifecycle.Notified, lifecycle.New), "invalid state transition: notified -> new")
	require.True(t, lifecycle.Resolved.Terminal())
	require.False(t, lifecycle.Taken.Terminal())
}

func TestParseStateRoundTrip(t *testing.T) {
	t.Parallel()
	for _, s := range lifecycle.States {
		got, err := lifecycle.ParseState(s.String())
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, bad := range []string{"", "New", "NOTIFIED", "closed", "taken "} {
		_, err := lifecycle.ParseState(bad)
		require.Error(t, err, bad)
	}
}

func TestRouteOf(t *testing.T) {
	t.Parallel()
	cases := []struct {
		s    string
		want lifecycle.Route
	}{
		{"initiated", lifecycle.RouteNew},
		{"in-progress", lifecycle.RouteTaken},
		{"settled", lifecycle.RouteResolved},
		{"seller-refunded", lifecycle.RouteResolved},
		{"released", lifecycle.RouteResolved},
		{"cooperatively-canceled", lifecycle.RouteResolved},
		{"buyer-refunded", lifecycle.RouteUnknown},
		{"Initiated", lifecycle.RouteUnknown},
		{"", lifecycle.RouteUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.s, func(t *testing.T) {
			require.Equal(t, tc.want, lifecycle.RouteOf(lifecycle.Status(tc.s)))
			require.Equal(t, tc.want != lifecycle.RouteUnknown, lifecycle.Status(tc.s).Known())
		})
	}
}

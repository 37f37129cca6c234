package route_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/intakesvc/internal/event"
	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
	"github.com/serbero/serbero/services/intakesvc/internal/route"
)

func rev(id string, at int64, s string) event.Revision {
	return event.Revision{EventID: id, CreatedAt: at, DisputeID: "d", Status: lifecycle.Status(s), Initiator: "buyer"}
}

func TestDecideFirstSight(t *testing.T) {
	t.Parallel()
	cases := []struct {
		status string
		want   route.Decision
	}{
		{"initiated", route.Decision{Outcome: route.Detected, Insert: true, Notify: "initial"}},
		{"in-progress", route.Decision{Outcome: route.Detected, Insert: true, To: lifecycle.Taken, Trigger: "e1", Notify: "assignment"}},
		{"settled", route.Decision{Outcome: route.Detected, Insert: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
		{"seller-refunded", route.Decision{Outcome: route.Detected, Insert: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
		{"released", route.Decision{Outcome: route.Detected, Insert: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
		{"cooperatively-canceled", route.Decision{Outcome: route.Detected, Insert: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
	}
	for _, tc := range cases {
		t.Run(tc.status, func(t *testing.T) {
			require.Equal(t, tc.want, route.Decide(nil, rev("e1", 100, tc.status)))
		})
	}
	t.Run("unknown status", func(t *testing.T) {
		d := route.Decide(nil, rev("e1", 100, "buyer-refunded"))
		require.Equal(t, route.Ignored, d.Outcome)
		require.True(t, d.UnknownStatus)
		require.False(t, d.Insert)
	})
}

func TestDecideRecorded(t *testing.T) {
	t.Parallel()
	cur := func(state lifecycle.State) *route.Current {
		return &route.Current{State: state, EventID: "e1", EventTimestamp: 100, NewestEventID: "e5", NewestCreatedAt: 150}
	}
	cases := []struct {
		name string
		cur  *route.Current
		rev  event.Revision
		want route.Decision
	}{
		{"replay of creating event", cur(lifecycle.Notified), rev("e1", 100, "initiated"),
			route.Decision{Outcome: route.Duplicate, Note: "revision already applied"}},
		{"replay of newest", cur(lifecycle.Taken), rev("e5", 150, "in-progress"),
			route.Decision{Outcome: route.Duplicate, Note: "revision already applied"}},
		{"older revision arrives late", cur(lifecycle.Taken), rev("e3", 120, "initiated"),
			route.Decision{Outcome: route.Stale, Note: "older than the newest applied revision"}},
		{"same second, higher id is older", cur(lifecycle.Taken), rev("e9", 150, "settled"),
			route.Decision{Outcome: route.Stale, Note: "older than the newest applied revision"}},
		{"same second, lower id wins", cur(lifecycle.Taken), rev("e0", 150, "settled"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
		{"republished initiated", cur(lifecycle.Notified), rev("e7", 200, "initiated"),
			route.Decision{Outcome: route.Duplicate, Track: true, SetStatus: true, Note: "dispute already recorded"}},
		{"taken from notified", cur(lifecycle.Notified), rev("e7", 200, "in-progress"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, To: lifecycle.Taken, Trigger: "e7", Notify: "assignment"}},
		{"taken from new", cur(lifecycle.New), rev("e7", 200, "in-progress"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, To: lifecycle.Taken, Trigger: "e7", Notify: "assignment"}},
		{"takeover after taken", cur(lifecycle.Taken), rev("e7", 200, "in-progress"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, Note: "already past notified; idempotent no-op"}},
		{"in-progress after resolved", cur(lifecycle.Resolved), rev("e7", 200, "in-progress"),
			route.Decision{Outcome: route.Applied, Track: true, Note: "in-progress revision after resolution; state kept"}},
		{"resolved from taken", cur(lifecycle.Taken), rev("e7", 200, "cooperatively-canceled"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, To: lifecycle.Resolved, Trigger: "dispute_resolved_externally"}},
		{"resolved again", cur(lifecycle.Resolved), rev("e7", 200, "settled"),
			route.Decision{Outcome: route.Applied, Track: true, SetStatus: true, Note: "already resolved; no-op"}},
		{"unknown status kept", cur(lifecycle.Notified), rev("e7", 200, "paused"),
			route.Decision{Outcome: route.Applied, Track: true, UnknownStatus: true, Note: "unrecognised status; state kept"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := route.Decide(tc.cur, tc.rev)
			require.Equal(t, tc.want, got)
			if got.To != "" {
				require.NoError(t, lifecycle.Check(tc.cur.State, got.To), "every decided move is legal")
			}
		})
	}
}

func TestNewestDefaultsToCreatingRevision(t *testing.T) {
	t.Parallel()
	c := route.Current{State: lifecycle.Notified, EventID: "e1", EventTimestamp: 100}
	at, id := c.Newest()
	require.Equal(t, int64(100), at)
	require.Equal(t, "e1", id)
	require.Equal(t, route.Stale, route.Decide(&c, rev("e2", 99, "in-progress")).Outcome)
}

package session_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/session"
)

func TestStatesAreTheStoredStrings(t *testing.T) {
	t.Parallel()
	got := session.Strings(session.States())
	require.Equal(t, []string{
		"opening", "awaiting_response", "classified", "follow_up_pending", "summary_pending",
		"summary_delivered", "escalation_recommended", "superseded_by_human", "closed",
	}, got)
}

func TestParseState(t *testing.T) {
	t.Parallel()
	for _, s := range session.States() {
		got, err := session.ParseState(string(s))
		require.NoError(t, err)
		require.Equal(t, s, got)
	}
	for _, bad := range []string{"", "Closed", " closed", "closed ", "escalated", "awaiting-response", "open"} {
		t.Run(bad, func(t *testing.T) {
			t.Parallel()
			got, err := session.ParseState(bad)
			require.ErrorIs(t, err, session.ErrUnknownState)
			require.Empty(t, got)
		})
	}
}

func FuzzParseState(f *testing.F) {
	for _, s := range session.States() {
		f.Add(string(s))
	}
	f.Add("")
	f.Add("CLOSED")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := session.ParseState(s)
		if err != nil {
			require.ErrorIs(t, err, session.ErrUnknownState)
			require.Empty(t, got)
			return
		}
		require.Equal(t, s, string(got))
		require.Contains(t, session.States(), got)
	})
}

func TestLiveAndEscalatable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		state       session.State
		live        bool
		escalatable bool
		terminal    bool
	}{
		{session.Opening, true, true, false},
		{session.AwaitingResponse, true, true, false},
		{session.Classified, true, true, false},
		{session.FollowUpPending, true, true, false},
		{session.SummaryPending, true, true, false},
		{session.SummaryDelivered, false, false, false},
		{session.EscalationRecommended, false, false, false},
		{session.SupersededByHuman, false, false, false},
		{session.Closed, false, false, true},
		{session.State("bogus"), false, false, false},
		{session.State(""), false, false, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.state), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.live, tt.state.Live(), "Live")
			require.Equal(t, tt.escalatable, tt.state.Escalatable(), "Escalatable")
			require.Equal(t, tt.terminal, tt.state.Terminal(), "Terminal")
		})
	}
	five := []session.State{session.Opening, session.AwaitingResponse, session.Classified, session.FollowUpPending, session.SummaryPending}
	require.Equal(t, five, session.LiveStates())
	require.Equal(t, five, session.EscalatableStates())
}

// legal is the whole transition table, written out independently of the
// code: every pair not listed is illegal.
var legal = map[[2]session.State]bool{
	{session.Opening, session.AwaitingResponse}:               true,
	{session.AwaitingResponse, session.Classified}:            true,
	{session.Classified, session.FollowUpPending}:             true,
	{session.Classified, session.SummaryPending}:              true,
	{session.FollowUpPending, session.AwaitingResponse}:       true,
	{session.SummaryPending, session.SummaryDelivered}:        true,
	{session.SummaryDelivered, session.Closed}:                true,
	{session.Opening, session.EscalationRecommended}:          true,
	{session.AwaitingResponse, session.EscalationRecommended}: true,
	{session.Classified, session.EscalationRecommended}:       true,
	{session.FollowUpPending, session.EscalationRecommended}:  true,
	{session.SummaryPending, session.EscalationRecommended}:   true,
	{session.EscalationRecommended, session.Closed}:           true,
	{session.Opening, session.SupersededByHuman}:              true,
	{session.AwaitingResponse, session.SupersededByHuman}:     true,
	{session.Classified, session.SupersededByHuman}:           true,
	{session.FollowUpPending, session.SupersededByHuman}:      true,
	{session.SummaryPending, session.SupersededByHuman}:       true,
	{session.SupersededByHuman, session.Closed}:               true,
}

func TestCanTransitionWholeTable(t *testing.T) {
	t.Parallel()
	all := append(session.States(), session.State("bogus"))
	n := 0
	for _, from := range all {
		for _, to := range all {
			want := legal[[2]session.State{from, to}]
			require.Equal(t, want, session.CanTransition(from, to), "%s -> %s", from, to)
			if want {
				n++
			}
		}
	}
	require.Len(t, legal, n)
}

func TestCanTransitionExamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		from, to session.State
		want     bool
	}{
		{session.AwaitingResponse, session.Classified, true},
		{session.Classified, session.SummaryPending, true},
		{session.SummaryPending, session.SummaryDelivered, true},
		{session.SummaryDelivered, session.Closed, true},
		{session.AwaitingResponse, session.EscalationRecommended, true},
		{session.SummaryPending, session.SupersededByHuman, true},
		{session.SupersededByHuman, session.Closed, true},
		{session.EscalationRecommended, session.Closed, true},
		// Illegal.
		{session.EscalationRecommended, session.EscalationRecommended, false}, // a second escalation
		{session.AwaitingResponse, session.AwaitingResponse, false},
		{session.EscalationRecommended, session.SupersededByHuman, false}, // an escalated session stays escalated
		{session.SummaryDelivered, session.EscalationRecommended, false},
		{session.SummaryDelivered, session.SupersededByHuman, false},
		{session.Closed, session.AwaitingResponse, false},
		{session.Closed, session.EscalationRecommended, false},
		{session.AwaitingResponse, session.SummaryPending, false}, // must go through classified
		{session.Classified, session.AwaitingResponse, false},
		{session.AwaitingResponse, session.Closed, false},
		{session.SummaryPending, session.Closed, false},
		{session.Opening, session.Classified, false},
		{session.State("bogus"), session.Closed, false},
	}
	for _, tt := range tests {
		t.Run(string(tt.from)+"->"+string(tt.to), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tt.want, session.CanTransition(tt.from, tt.to))
		})
	}
}

func TestSources(t *testing.T) {
	t.Parallel()
	five := []session.State{session.Opening, session.AwaitingResponse, session.Classified, session.FollowUpPending, session.SummaryPending}
	tests := []struct {
		to   session.State
		want []session.State
	}{
		{session.Opening, []session.State{}},
		{session.AwaitingResponse, []session.State{session.Opening, session.FollowUpPending}},
		{session.Classified, []session.State{session.AwaitingResponse}},
		{session.FollowUpPending, []session.State{session.Classified}},
		{session.SummaryPending, []session.State{session.Classified}},
		{session.SummaryDelivered, []session.State{session.SummaryPending}},
		{session.EscalationRecommended, five},
		{session.SupersededByHuman, five},
		{session.Closed, []session.State{session.SummaryDelivered, session.EscalationRecommended, session.SupersededByHuman}},
		{session.State("bogus"), []session.State{}},
	}
	for _, tt := range tests {
		t.Run(string(tt.to), func(t *testing.T) {
			t.Parallel()
			got := session.Sources(tt.to)
			require.NotNil(t, got)
			require.Equal(t, tt.want, got)
			for _, from := range got {
				require.True(t, session.CanTransition(from, tt.to))
			}
		})
	}
	require.Equal(t, session.EscalatableStates(), session.Sources(session.EscalationRecommended))
}

func TestTargetsMatchCanTransition(t *testing.T) {
	t.Parallel()
	for _, from := range session.States() {
		targets := session.Targets(from)
		require.NotNil(t, targets)
		for _, to := range session.States() {
			require.Equal(t, session.CanTransition(from, to), contains(targets, to), "%s -> %s", from, to)
		}
	}
	require.Empty(t, session.Targets(session.Closed))
}

func TestSlicesAreFresh(t *testing.T) {
	t.Parallel()
	s := session.States()
	s[0] = "mutated"
	require.Equal(t, session.Opening, session.States()[0])
	l := session.LiveStates()
	l[0] = "mutated"
	require.Equal(t, session.Opening, session.LiveStates()[0])
	src := session.Sources(session.Closed)
	src[0] = "mutated"
	require.Equal(t, session.SummaryDelivered, session.Sources(session.Closed)[0])
}

func contains(ss []session.State, s session.State) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

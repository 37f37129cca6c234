package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	authsvcv1 "github.com/serbero/serbero/gen/go/serbero/authsvc/v1"
	escalationsvcv1 "github.com/serbero/serbero/gen/go/serbero/escalationsvc/v1"
	intakesvcv1 "github.com/serbero/serbero/gen/go/serbero/intakesvc/v1"
	mediationsvcv1 "github.com/serbero/serbero/gen/go/serbero/mediationsvc/v1"
	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/config"
)

// The leaves of the ctl tree. Each setup registers the command's own flags
// and returns what runs it.

type ctlRun = func(ctx context.Context, c *ctl, args []string) error

// partsLimit bounds the sessions and handoffs `disputes get` reads of one
// dispute (the APIs' maximum page).
const partsLimit = 1000

func limitFlag(fs *flag.FlagSet) *int { return fs.Int("limit", 50, "at most `N` rows") }

func pageSize(n int) (int32, error) {
	if n < 1 || n > partsLimit {
		return 0, &usageError{msg: fmt.Sprintf("--limit must be between 1 and %d, got %d", partsLimit, n)}
	}
	return int32(n), nil
}

func disputesList(fs *flag.FlagSet) ctlRun {
	var states multi
	fs.Var(&states, "state", "only this lifecycle `STATE` (new, notified, taken, waiting, escalated, resolved); repeatable")
	limit := limitFlag(fs)
	return func(ctx context.Context, c *ctl, _ []string) error {
		size, err := pageSize(*limit)
		if err != nil {
			return err
		}
		req := &intakesvcv1.ListDisputesRequest{PageSize: size}
		for _, s := range states {
			v, ok := intakesvcv1.LifecycleState_value["LIFECYCLE_STATE_"+strings.ToUpper(s)]
			if !ok {
				return &usageError{msg: fmt.Sprintf("unknown state %q (want new, notified, taken, waiting, escalated or resolved)", s)}
			}
			req.States = append(req.States, intakesvcv1.LifecycleState(v))
		}
		p, err := c.conn(ctx, config.TargetIntakesvc)
		if err != nil {
			return err
		}
		resp, err := intakesvcv1.NewIntakeServiceClient(p.conn).ListDisputes(ctx, req)
		if err != nil {
			return p.fail("list disputes", err)
		}
		return c.emit(resp, func(w io.Writer) error {
			t := &table{header: []string{"DISPUTE", "STATE", "INITIATOR", "STATUS", "DETECTED", "LAST NOTIFIED", "ASSIGNED"}}
			for _, d := range resp.GetDisputes() {
				t.add(d.GetDisputeId(), stateName(d.GetLifecycleState().String(), "LIFECYCLE_STATE_"),
					d.GetInitiatorRole(), d.GetDisputeStatus(), tsText(d.GetDetectedAt()), tsText(d.GetLastNotifiedAt()), d.GetAssignedSolver())
			}
			return t.write(w, "")
		})
	}
}

// disputesGet prints one document: the dispute as intakesvc records it,
// its mediation sessions and audit trail (mediationsvc) and its handoffs
// (escalationsvc). A part whose service cannot be asked is null, with the
// reason under "unavailable" (and on stderr).
func disputesGet(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, args []string) error {
		id := args[0]
		ip, err := c.conn(ctx, config.TargetIntakesvc)
		if err != nil {
			return err
		}
		d, err := intakesvcv1.NewIntakeServiceClient(ip.conn).GetDispute(ctx, &intakesvcv1.GetDisputeRequest{DisputeId: id})
		if err != nil {
			return ip.fail("get dispute "+id, err)
		}

		var unavailable doc
		miss := func(svc config.Target, err error) {
			unavailable = append(unavailable, field{key: string(svc), val: err.Error()})
			fmt.Fprintf(c.stderr, "serbero: warning: %s\n", err)
		}
		// A part is nil (JSON null) when its service could not be asked.
		var (
			sessions                               []*mediationsvcv1.Session
			trail                                  []*mediationsvcv1.AuditEvent
			hs                                     []*escalationsvcv1.Handoff
			sessionsPart, eventsPart, handoffsPart any
		)
		if mp, err := c.conn(ctx, config.TargetMediationsvc); err != nil {
			miss(config.TargetMediationsvc, err)
		} else {
			mc := mediationsvcv1.NewMediationServiceClient(mp.conn)
			ls, err := mc.ListSessions(ctx, &mediationsvcv1.ListSessionsRequest{DisputeId: id, PageSize: partsLimit})
			if err != nil {
				miss(config.TargetMediationsvc, mp.fail("mediation sessions of "+id, err))
			} else if ae, err := mc.ListAuditEvents(ctx, &mediationsvcv1.ListAuditEventsRequest{DisputeId: id}); err != nil {
				miss(config.TargetMediationsvc, mp.fail("audit trail of "+id, err))
			} else {
				sessions, trail = ls.GetSessions(), ae.GetEvents()
				sessionsPart, eventsPart = messages(sessions), messages(trail)
			}
		}
		if ep, err := c.conn(ctx, config.TargetEscalationsvc); err != nil {
			miss(config.TargetEscalationsvc, err)
		} else {
			lh, err := escalationsvcv1.NewEscalationServiceClient(ep.conn).ListHandoffs(ctx,
				&escalationsvcv1.ListHandoffsRequest{DisputeId: id, PageSize: partsLimit})
			if err != nil {
				miss(config.TargetEscalationsvc, ep.fail("handoffs of "+id, err))
			} else {
				hs = lh.GetHandoffs()
				handoffsPart = messages(hs)
			}
		}

		out := doc{
			{"dispute", d.GetDispute()},
			{"transitions", messages(d.GetTransitions())},
			{"notifications", messages(d.GetNotifications())},
			{"sessions", sessionsPart},
			{"handoffs", handoffsPart},
			{"auditEvents", eventsPart},
		}
		if len(unavailable) > 0 {
			out = append(out, field{"unavailable", unavailable})
		}
		return c.emit(out, func(w io.Writer) error {
			if err := describe(w, d.GetDispute(), ""); err != nil {
				return err
			}
			t := &table{header: []string{"ID", "FROM", "TO", "AT", "TRIGGER"}}
			for _, tr := range d.GetTransitions() {
				from := "-" // the first transition comes from no state
				if tr.GetFromState() != intakesvcv1.LifecycleState_LIFECYCLE_STATE_UNSPECIFIED {
					from = stateName(tr.GetFromState().String(), "LIFECYCLE_STATE_")
				}
				t.add(strconv.FormatInt(tr.GetId(), 10), from, stateName(tr.GetToState().String(), "LIFECYCLE_STATE_"),
					tsText(tr.GetTransitionedAt()), tr.GetTrigger())
			}
			if err := section(w, "Transitions", t); err != nil {
				return err
			}
			t = &table{header: []string{"ID", "SOLVER", "TYPE", "STATUS", "SENT", "ERROR"}}
			for _, n := range d.GetNotifications() {
				t.add(strconv.FormatInt(n.GetId(), 10), n.GetSolverPubkey(), n.GetNotifType(), n.GetStatus(), tsText(n.GetSentAt()), short(n.GetErrorMessage(), 60))
			}
			if err := section(w, "Notifications", t); err != nil {
				return err
			}
			if sessionsPart != nil {
				if err := section(w, "Mediation sessions", sessionsTable(sessions)); err != nil {
					return err
				}
			}
			if handoffsPart != nil {
				if err := section(w, "Handoffs", handoffsTable(hs)); err != nil {
					return err
				}
			}
			if eventsPart != nil {
				t = &table{header: []string{"ID", "AT", "SESSION", "KIND", "RATIONALE", "PAYLOAD"}}
				for _, e := range trail {
					t.add(strconv.FormatInt(e.GetId(), 10), tsText(e.GetOccurredAt()), e.GetSessionId(), e.GetKind(), e.GetRationaleId(), short(e.GetPayloadJson(), 80))
				}
				if err := section(w, "Audit trail", t); err != nil {
					return err
				}
			}
			if len(unavailable) > 0 {
				if _, err := fmt.Fprintln(w, "\nUnavailable:"); err != nil {
					return err
				}
				for _, f := range unavailable {
					if _, err := fmt.Fprintf(w, "  %s: %s\n", f.key, f.val); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
}

func disputesQuarantine(fs *flag.FlagSet) ctlRun {
	limit := limitFlag(fs)
	return func(ctx context.Context, c *ctl, _ []string) error {
		size, err := pageSize(*limit)
		if err != nil {
			return err
		}
		p, err := c.conn(ctx, config.TargetIntakesvc)
		if err != nil {
			return err
		}
		resp, err := intakesvcv1.NewIntakeServiceClient(p.conn).ListQuarantinedEvents(ctx, &intakesvcv1.ListQuarantinedEventsRequest{PageSize: size})
		if err != nil {
			return p.fail("list quarantined events", err)
		}
		return c.emit(resp, func(w io.Writer) error {
			t := &table{header: []string{"EVENT", "CURSOR", "DISPUTE", "CLASS", "SEEN", "FIRST SEEN", "LAST SEEN", "REASON"}}
			for _, q := range resp.GetEvents() {
				t.add(q.GetEventId(), strconv.FormatInt(q.GetCursor(), 10), short(q.GetDisputeId(), 40),
					q.GetClass(), strconv.FormatInt(q.GetSeenCount(), 10), tsText(q.GetFirstSeenAt()), tsText(q.GetLastSeenAt()), short(q.GetReason(), 80))
			}
			return t.write(w, "")
		})
	}
}

func sessionsTable(ss []*mediationsvcv1.Session) *table {
	t := &table{header: []string{"SESSION", "DISPUTE", "STATE", "ROUNDS", "CLASSIFICATION", "STARTED", "LAST TRANSITION"}}
	for _, s := range ss {
		class := s.GetCurrentClassification()
		if s.CurrentConfidence != nil {
			class += fmt.Sprintf(" (%.2f)", s.GetCurrentConfidence())
		}
		t.add(s.GetSessionId(), s.GetDisputeId(), s.GetState(), strconv.Itoa(int(s.GetRoundCount())), class,
			tsText(s.GetStartedAt()), tsText(s.GetLastTransitionAt()))
	}
	return t
}

func sessionsList(fs *flag.FlagSet) ctlRun {
	dispute := fs.String("dispute", "", "only the sessions of this dispute `ID`")
	var states multi
	fs.Var(&states, "state", "only this `STATE` (opening, awaiting_response, classified, follow_up_pending, summary_pending, "+
		"summary_delivered, escalation_recommended, superseded_by_human, closed); repeatable")
	limit := limitFlag(fs)
	return func(ctx context.Context, c *ctl, _ []string) error {
		size, err := pageSize(*limit)
		if err != nil {
			return err
		}
		for _, s := range states {
			if !sessionStates[s] {
				return &usageError{msg: fmt.Sprintf("unknown session state %q (want one of %s)", s, strings.Join(sessionStateNames, ", "))}
			}
		}
		p, err := c.conn(ctx, config.TargetMediationsvc)
		if err != nil {
			return err
		}
		resp, err := mediationsvcv1.NewMediationServiceClient(p.conn).ListSessions(ctx,
			&mediationsvcv1.ListSessionsRequest{DisputeId: *dispute, States: states, PageSize: size})
		if err != nil {
			return p.fail("list sessions", err)
		}
		return c.emit(resp, func(w io.Writer) error { return sessionsTable(resp.GetSessions()).write(w, "") })
	}
}

// sessionStateNames are the states of mediation_sessions.state.
var sessionStateNames = []string{"opening", "awaiting_response", "classified", "follow_up_pending", "summary_pending",
	"summary_delivered", "escalation_recommended", "superseded_by_human", "closed"}

var sessionStates = func() map[string]bool {
	m := map[string]bool{}
	for _, s := range sessionStateNames {
		m[s] = true
	}
	return m
}()

// sessionsGet prints a session with its transcript (the parties' chat, for
// the operator's eyes: the services never log it), its classification
// history and its rationale ids (never rationale text).
func sessionsGet(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, args []string) error {
		p, err := c.conn(ctx, config.TargetMediationsvc)
		if err != nil {
			return err
		}
		resp, err := mediationsvcv1.NewMediationServiceClient(p.conn).GetSession(ctx, &mediationsvcv1.GetSessionRequest{SessionId: args[0]})
		if err != nil {
			return p.fail("get session "+args[0], err)
		}
		return c.emit(resp, func(w io.Writer) error {
			if err := describe(w, resp.GetSession(), ""); err != nil {
				return err
			}
			t := &table{header: []string{"AT", "DIRECTION", "PARTY", "STALE", "MESSAGE"}}
			for _, m := range resp.GetTranscript() {
				stale := ""
				if m.GetStale() {
					stale = "stale"
				}
				t.add(tsText(m.GetCreatedAt()), m.GetDirection(), m.GetParty(), stale, m.GetContent())
			}
			if err := section(w, "Transcript", t); err != nil {
				return err
			}
			t = &table{header: []string{"AT", "KIND", "CLASSIFICATION", "CONFIDENCE", "RATIONALE"}}
			for _, cl := range resp.GetClassifications() {
				t.add(tsText(cl.GetOccurredAt()), cl.GetKind(), cl.GetClassification(), strconv.FormatFloat(cl.GetConfidence(), 'f', 2, 64), cl.GetRationaleId())
			}
			if err := section(w, "Classifications", t); err != nil {
				return err
			}
			t = &table{header: []string{"RATIONALE", "OPERATION", "PROVIDER", "MODEL", "GENERATED"}}
			for _, r := range resp.GetRationales() {
				t.add(r.GetRationaleId(), r.GetOperation(), r.GetProvider(), r.GetModel(), tsText(r.GetGeneratedAt()))
			}
			if err := section(w, "Rationales (ids only)", t); err != nil {
				return err
			}
			t = &table{header: []string{"ID", "AT", "KIND", "RATIONALE", "PAYLOAD"}}
			for _, e := range resp.GetEvents() {
				t.add(strconv.FormatInt(e.GetId(), 10), tsText(e.GetOccurredAt()), e.GetKind(), e.GetRationaleId(), short(e.GetPayloadJson(), 80))
			}
			return section(w, "Audit events", t)
		})
	}
}

func handoffsTable(hs []*escalationsvcv1.Handoff) *table {
	t := &table{header: []string{"ID", "DISPUTE", "TRIGGER", "STATUS", "ATTEMPTS", "OUTCOME", "CREATED", "LAST ERROR"}}
	for _, h := range hs {
		t.add(strconv.FormatInt(h.GetId(), 10), h.GetDisputeId(), h.GetTrigger(), stateName(h.GetStatus().String(), "HANDOFF_STATUS_"),
			strconv.Itoa(int(h.GetAttempts())), h.GetOutcome(), tsText(h.GetCreatedAt()), short(h.GetLastError(), 60))
	}
	return t
}

func handoffsList(fs *flag.FlagSet) ctlRun {
	dispute := fs.String("dispute", "", "only the handoffs of this dispute `ID`")
	var statuses multi
	fs.Var(&statuses, "status", "only this `STATUS` (pending, claimed, done, parked, failed); repeatable")
	limit := limitFlag(fs)
	return func(ctx context.Context, c *ctl, _ []string) error {
		size, err := pageSize(*limit)
		if err != nil {
			return err
		}
		req := &escalationsvcv1.ListHandoffsRequest{PageSize: size, DisputeId: *dispute}
		for _, s := range statuses {
			v, ok := escalationsvcv1.HandoffStatus_value["HANDOFF_STATUS_"+strings.ToUpper(s)]
			if !ok {
				return &usageError{msg: fmt.Sprintf("unknown status %q (want pending, claimed, done, parked or failed)", s)}
			}
			req.Statuses = append(req.Statuses, escalationsvcv1.HandoffStatus(v))
		}
		p, err := c.conn(ctx, config.TargetEscalationsvc)
		if err != nil {
			return err
		}
		resp, err := escalationsvcv1.NewEscalationServiceClient(p.conn).ListHandoffs(ctx, req)
		if err != nil {
			return p.fail("list handoffs", err)
		}
		return c.emit(resp, func(w io.Writer) error { return handoffsTable(resp.GetHandoffs()).write(w, "") })
	}
}

func handoffID(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, &usageError{msg: fmt.Sprintf("bad handoff id %q: want the numeric ID of handoffs list", s)}
	}
	return n, nil
}

func handoffsGet(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, args []string) error {
		n, err := handoffID(args[0])
		if err != nil {
			return err
		}
		p, err := c.conn(ctx, config.TargetEscalationsvc)
		if err != nil {
			return err
		}
		resp, err := escalationsvcv1.NewEscalationServiceClient(p.conn).GetHandoff(ctx, &escalationsvcv1.GetHandoffRequest{Id: n})
		if err != nil {
			return p.fail("get handoff "+args[0], err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp, "") })
	}
}

func handoffsRequeue(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, args []string) error {
		n, err := handoffID(args[0])
		if err != nil {
			return err
		}
		p, err := c.conn(ctx, config.TargetEscalationsvc)
		if err != nil {
			return err
		}
		resp, err := escalationsvcv1.NewEscalationServiceClient(p.conn).RequeueHandoff(ctx, &escalationsvcv1.RequeueHandoffRequest{Id: n})
		if err != nil {
			return p.fail("requeue handoff "+args[0], err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp, "") })
	}
}

func authState(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, _ []string) error {
		p, err := c.conn(ctx, config.TargetAuthsvc)
		if err != nil {
			return err
		}
		resp, err := authsvcv1.NewAuthServiceClient(p.conn).CurrentState(ctx, &authsvcv1.CurrentStateRequest{})
		if err != nil {
			return p.fail("auth state", err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp.GetState(), "") })
	}
}

func authReset(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, _ []string) error {
		p, err := c.conn(ctx, config.TargetAuthsvc)
		if err != nil {
			return err
		}
		resp, err := authsvcv1.NewAuthServiceClient(p.conn).ResetTerminated(ctx, &authsvcv1.ResetTerminatedRequest{})
		if err != nil {
			return p.fail("auth reset", err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp.GetState(), "") })
	}
}

func relays(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, _ []string) error {
		p, err := c.conn(ctx, config.TargetRelaygw)
		if err != nil {
			return err
		}
		resp, err := relaygwv1.NewRelayGatewayServiceClient(p.conn).GetRelayStatus(ctx, &relaygwv1.GetRelayStatusRequest{})
		if err != nil {
			return p.fail("relay status", err)
		}
		return c.emit(resp, func(w io.Writer) error {
			t := &table{header: []string{"RELAY", "CONNECTED", "SINCE", "LAST EVENT", "FAILURES", "LAST ERROR"}}
			for _, r := range resp.GetRelays() {
				t.add(r.GetUrl(), strconv.FormatBool(r.GetConnected()), tsText(r.GetConnectedSince()),
					tsText(r.GetLastEventAt()), strconv.FormatInt(r.GetFailures(), 10), short(r.GetLastError(), 60))
			}
			return t.write(w, "")
		})
	}
}

func mostroInfo(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, _ []string) error {
		p, err := c.conn(ctx, config.TargetRelaygw)
		if err != nil {
			return err
		}
		resp, err := relaygwv1.NewRelayGatewayServiceClient(p.conn).GetMostroInfo(ctx, &relaygwv1.GetMostroInfoRequest{})
		if err != nil {
			return p.fail("mostro info", err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp.GetInfo(), "") })
	}
}

func identity(*flag.FlagSet) ctlRun {
	return func(ctx context.Context, c *ctl, _ []string) error {
		p, err := c.conn(ctx, config.TargetRelaygw)
		if err != nil {
			return err
		}
		resp, err := relaygwv1.NewRelayGatewayServiceClient(p.conn).GetIdentity(ctx, &relaygwv1.GetIdentityRequest{})
		if err != nil {
			return p.fail("identity", err)
		}
		return c.emit(resp, func(w io.Writer) error { return describe(w, resp, "") })
	}
}

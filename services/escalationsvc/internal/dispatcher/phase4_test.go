package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	relaygwv1 "github.com/serbero/serbero/gen/go/serbero/relaygw/v1"
	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/pkg/logging/logtest"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
)

// scenario runs fn in every world, in parallel.
func scenario(t *testing.T, fn func(t *testing.T, e *env, w world)) {
	t.Helper()
	t.Parallel()
	for name, mk := range worlds() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			fn(t, e, mk(t, e))
		})
	}
}

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func ptr(s string) *string { return &s }

// payload decodes an audit payload, keeping numbers exact.
func payload(t testing.TB, raw string) map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	require.NoError(t, dec.Decode(&m))
	return m
}

// requirePaired checks the pairing rule (docs/escalation.md#what-it-records):
// every dispatch row has exactly one escalation_dispatched row with its
// dispatch_id, and vice versa.
func requirePaired(t testing.TB, e *env) {
	t.Helper()
	require.Zero(t, e.count(`SELECT count(*) FROM escalation_dispatches d WHERE
 (SELECT count(*) FROM mediation_events m WHERE m.kind = 'escalation_dispatched' AND m.payload_json ->> 'dispatch_id' = d.dispatch_id) <> 1`),
		"dispatch rows without exactly one audit row")
	require.Zero(t, e.count(`SELECT count(*) FROM mediation_events m WHERE m.kind = 'escalation_dispatched' AND
 (SELECT count(*) FROM escalation_dispatches d WHERE d.dispatch_id = m.payload_json ->> 'dispatch_id') <> 1`),
		"audit rows without exactly one dispatch row")
}

// A targeted write solver receives the DM; the dispatch row, its audit row
// (with the envelope copied from the handoff) and the escalation_handoff
// notification are recorded.
func TestTargetedWriteSolverReceivesDM(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "taken", ptr(s.Pubkey()))
		e.session("d-1", "s-1")
		h := e.handoff(samplePkg("d-1", "s-1"))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Equal(t, 1, e.cycle(d))

		bodies := s.Expect(t, 1)
		require.True(t, strings.HasPrefix(bodies[0], "escalation_handoff/v1\n"))
		require.Equal(t, route.Body(samplePkg("d-1", "s-1")), bodies[0], "the body byte for byte")
		for _, want := range []string{"d-1", "Session: s-1", "conflicting_claims"} {
			require.Contains(t, bodies[0], want)
		}

		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, s.Pubkey(), ds[0].TargetSolver)
		require.Equal(t, "dispatched", ds[0].Status)
		require.Zero(t, ds[0].FallbackBroadcast)
		require.Equal(t, "d-1", ds[0].DisputeID)
		require.Equal(t, "s-1", *ds[0].SessionID)
		require.Equal(t, h.HandoffEventID, ds[0].HandoffEventID)
		require.Regexp(t, uuidV4, ds[0].DispatchID)
		require.LessOrEqual(t, ds[0].CreatedAt, ds[0].DispatchedAt)

		as := e.audits(audit.KindEscalationDispatched)
		require.Len(t, as, 1)
		p := payload(t, as[0].Payload)
		require.ElementsMatch(t, []string{"dispatch_id", "dispute_id", "handoff_event_id", "target_solver", "status", "fallback_broadcast"}, slices.Collect(maps.Keys(p)))
		require.Equal(t, ds[0].DispatchID, p["dispatch_id"])
		require.Equal(t, "d-1", p["dispute_id"])
		require.Equal(t, json.Number(jsonNum(h.HandoffEventID)), p["handoff_event_id"], "a JSON integer")
		require.Equal(t, s.Pubkey(), p["target_solver"])
		require.Equal(t, "dispatched", p["status"])
		require.Equal(t, false, p["fallback_broadcast"], "a JSON boolean")
		require.Equal(t, "s-1", *as[0].SessionID, "envelope copied from the handoff row")
		require.Equal(t, "phase3-default", *as[0].PromptBundleID)
		require.Equal(t, "hash-1", *as[0].Hash)
		require.Nil(t, as[0].RationaleID)
		require.Equal(t, ds[0].DispatchedAt, as[0].OccurredAt)

		ns := e.notifications()
		require.Len(t, ns, 1)
		require.Equal(t, notificationRow{DisputeID: "d-1", Solver: s.Pubkey(), Status: "sent", NotifType: "escalation_handoff", SentAt: ds[0].CreatedAt}, ns[0])

		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusDone, q.Status)
		require.Equal(t, handoff.OutcomeDispatched, q.Outcome)
		requirePaired(t, e)
	})
}

func jsonNum(n int64) string { return strconv.FormatInt(n, 10) }

// No assignment: every write solver receives it.
func TestBroadcastToAllWriteSolversWhenAssignedUnknown(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		a, b := w.solver(), w.solver()
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(a.Pubkey()), writeSolver(b.Pubkey())}, false)
		e.cycle(d)
		a.Expect(t, 1)
		b.Expect(t, 1)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, a.Pubkey()+","+b.Pubkey(), ds[0].TargetSolver)
		require.Zero(t, ds[0].FallbackBroadcast)
		require.Nil(t, ds[0].SessionID)
		ns := e.notifications()
		require.Len(t, ns, 2)
		require.Equal(t, a.Pubkey(), ns[0].Solver, "notifications in send order")
		require.Equal(t, b.Pubkey(), ns[1].Solver)
	})
}

// An assigned read solver falls back to the write solvers.
func TestReadPermissionAssignmentFallsBackToBroadcast(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		reader, writer := w.solver(), w.solver()
		e.dispute("d-1", "taken", ptr(reader.Pubkey()))
		e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{readSolver(reader.Pubkey()), writeSolver(writer.Pubkey())}, false)
		e.cycle(d)
		writer.Expect(t, 1)
		reader.Expect(t, 0)
		require.Equal(t, writer.Pubkey(), e.dispatches()[0].TargetSolver)
	})
}

// A dispute-scoped handoff says so on line 3 and has no session_id key.
func TestDisputeScopedHandoffEmitsNoneSessionMarker(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		body := s.Expect(t, 1)[0]
		require.Contains(t, body, "\nSession: <none \u2014 dispute-scoped handoff>\n")
		lines := strings.Split(body, "\n")
		jsonLine := lines[len(lines)-1]
		require.NotContains(t, jsonLine, "session_id")
		//nolint:testifylint // byte-exact on purpose: the key order is part of the DM contract
		require.Equal(t, `{"dispute_id":"d-1","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`, jsonLine)
	})
}

// A dispatch is paired with its audit row, and a second cycle does nothing.
func TestDispatchPairedAndDeduplicated(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Equal(t, 1, e.cycle(d))
		requirePaired(t, e)
		require.Zero(t, e.cycle(d), "a second cycle finds nothing to claim")
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM mediation_events WHERE kind = 'escalation_dispatched' AND (payload_json ->> 'handoff_event_id')::bigint = $1`, h.HandoffEventID))
		require.Len(t, e.notifications(), 1)
		requirePaired(t, e)
	})
}

// A resolved dispute supersedes the handoff: no DM, one supersession row.
func TestResolvedDisputeIsSkippedNoDM(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "resolved", nil)
		e.session("d-1", "s-1")
		h := e.handoff(samplePkg("d-1", "s-1"))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		require.Empty(t, e.audits(audit.KindEscalationDispatched))
		sup := e.audits(audit.KindEscalationSuperseded)
		require.Len(t, sup, 1)
		p := payload(t, sup[0].Payload)
		require.ElementsMatch(t, []string{"dispute_id", "handoff_event_id", "reason"}, slices.Collect(maps.Keys(p)))
		require.Equal(t, "dispute_already_resolved", p["reason"])
		require.Equal(t, json.Number(jsonNum(h.HandoffEventID)), p["handoff_event_id"])
		require.Equal(t, "d-1", p["dispute_id"])
		require.Equal(t, "s-1", *sup[0].SessionID)
		require.Equal(t, "phase3-default", *sup[0].PromptBundleID)
		require.Equal(t, "hash-1", *sup[0].Hash)
		require.Nil(t, sup[0].RationaleID)
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusParked, q.Status, "not consumed")
		require.Equal(t, handoff.ParkSuperseded, q.ParkedReason)
	})
}

// A resolution after the dispatch recalls nothing.
func TestDisputeResolvingAfterDispatchDoesNotRecall(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		e.cycle(d)
		e.setState("d-1", "resolved")
		e.cycle(d)
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Empty(t, e.audits(audit.KindEscalationSuperseded))
	})
}

// Supersession parks, it does not consume: a dispute back from resolved is
// dispatched, and the supersession row stays.
func TestSupersessionDoesNotMarkHandoffConsumed(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "resolved", nil)
		e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Equal(t, 1, e.cycle(d))
		require.Equal(t, 1, e.cycle(d), "the parked handoff is evaluated again")
		require.Len(t, e.audits(audit.KindEscalationSuperseded), 1, "writer-side dedup")
		require.Empty(t, e.dispatches())
		e.setState("d-1", "notified")
		e.cycle(d)
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Len(t, e.audits(audit.KindEscalationDispatched), 1)
		require.Len(t, e.audits(audit.KindEscalationSuperseded), 1, "the supersession row is preserved")
	})
}

// No write solver and no fallback: unroutable, one audit row per handoff,
// an ERROR log on every evaluation.
func TestZeroWriteSolversFallbackOffRecordsUnroutable(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		reader := w.solver()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		logger, logs := logtest.NewLevel(slog.LevelInfo)
		d := e.dispatcher(w.sender(), []config.SolverConfig{readSolver(reader.Pubkey())}, false, func(o *Options) {
			o.Logger = logger
		})
		e.cycle(d)
		e.cycle(d)
		reader.Expect(t, 0)
		require.Empty(t, e.dispatches())
		require.Empty(t, e.audits(audit.KindEscalationDispatched))
		un := e.audits(audit.KindEscalationDispatchUnroutable)
		require.Len(t, un, 1, "one audit row per handoff however many cycles")
		p := payload(t, un[0].Payload)
		require.ElementsMatch(t, []string{"dispute_id", "handoff_event_id", "configured_solver_count", "fallback_to_all_solvers"}, slices.Collect(maps.Keys(p)))
		require.Equal(t, json.Number("1"), p["configured_solver_count"])
		require.Equal(t, false, p["fallback_to_all_solvers"])
		require.Equal(t, json.Number(jsonNum(h.HandoffEventID)), p["handoff_event_id"])

		var errs int
		for _, line := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
			var rec map[string]any
			require.NoError(t, json.Unmarshal([]byte(line), &rec))
			msg, _ := rec["msg"].(string)
			if strings.HasPrefix(msg, "phase4_unroutable — no write-permission solver configured") {
				errs++
				require.Equal(t, "ERROR", rec["level"])
				require.Equal(t, "d-1", rec["dispute_id"])
				require.Contains(t, rec["msg"], "[escalation].fallback_to_all_solvers = true")
				require.EqualValues(t, 1, rec["configured_solver_count"])
				require.Equal(t, false, rec["config_fallback_to_all_solvers"])
			}
		}
		require.Equal(t, 2, errs, "an ERROR on every evaluation")
	})
}

// No write solver, fallback on: every solver receives it.
func TestZeroWriteSolversFallbackOnBroadcastsToEveryone(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		r1, r2 := w.solver(), w.solver()
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{readSolver(r1.Pubkey()), readSolver(r2.Pubkey())}, true))
		r1.Expect(t, 1)
		r2.Expect(t, 1)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, r1.Pubkey()+","+r2.Pubkey(), ds[0].TargetSolver)
		require.Equal(t, 1, ds[0].FallbackBroadcast)
		require.Equal(t, true, payload(t, e.audits(audit.KindEscalationDispatched)[0].Payload)["fallback_broadcast"])
		require.Empty(t, e.audits(audit.KindEscalationDispatchUnroutable))
	})
}

// Fallback on with no solver at all: unroutable.
func TestFallbackOnWithZeroSolversWritesUnroutable(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(w.sender(), nil, true))
		require.Empty(t, e.dispatches())
		un := e.audits(audit.KindEscalationDispatchUnroutable)
		require.Len(t, un, 1)
		p := payload(t, un[0].Payload)
		require.Equal(t, json.Number("0"), p["configured_solver_count"])
		require.Equal(t, false, p["fallback_to_all_solvers"])
	})
}

// A replica started with a routable configuration dispatches a
// handoff parked as unroutable at once, even with a long park backoff.
func TestUnroutableHandoffPickedUpAfterConfigChange(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		reader, writer := w.solver(), w.solver()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		longPark := func(o *Options) { o.ParkBackoff = nil; o.PollInterval = 3600e9 }
		before := e.dispatcher(w.sender(), []config.SolverConfig{readSolver(reader.Pubkey())}, false, longPark)
		e.cycle(before)
		require.Zero(t, e.cycle(before), "parked for the backoff")
		require.Equal(t, handoff.StatusParked, e.queueRow(h.ID).Status)

		after := e.dispatcher(w.sender(), []config.SolverConfig{readSolver(reader.Pubkey()), writeSolver(writer.Pubkey())}, false, longPark)
		after.WakeUnroutable(e.ctx)
		require.Equal(t, 1, e.cycle(after))
		writer.Expect(t, 1)
		reader.Expect(t, 0)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, writer.Pubkey(), ds[0].TargetSolver)
		require.Zero(t, ds[0].FallbackBroadcast)
		require.Len(t, e.audits(audit.KindEscalationDispatchUnroutable), 1, "kept")
		require.Len(t, e.audits(audit.KindEscalationDispatched), 1)
	})
}

// Every recipient failing records send_failed, with a key that does not
// parse and one that parses but is not a point on the curve (both are
// "invalid pubkey", as in intakesvc).
func TestAllRecipientFailureRecordsSendFailed(t *testing.T) {
	for name, bad := range map[string]string{"unparsable": "not-a-valid-pubkey", "not on the curve": strings.Repeat("f", 64)} {
		t.Run(name, func(t *testing.T) { allRecipientFailure(t, bad) })
	}
}

func allRecipientFailure(t *testing.T, bad string) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(bad)}, false)
		e.cycle(d)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, "send_failed", ds[0].Status)
		require.Equal(t, bad, ds[0].TargetSolver)
		require.Zero(t, ds[0].FallbackBroadcast)
		as := e.audits(audit.KindEscalationDispatched)
		require.Len(t, as, 1)
		p := payload(t, as[0].Payload)
		require.Equal(t, "send_failed", p["status"])
		require.Equal(t, ds[0].DispatchID, p["dispatch_id"])
		ns := e.notifications()
		require.Len(t, ns, 1)
		require.Equal(t, "failed", ns[0].Status)
		require.Equal(t, bad, ns[0].Solver)
		require.NotNil(t, ns[0].Error)
		require.True(t, strings.HasPrefix(*ns[0].Error, "invalid pubkey: "), *ns[0].Error)
		require.Equal(t, 1, e.count(`SELECT count(*) FROM escalation_dispatches WHERE status = 'send_failed'`))
		require.Equal(t, handoff.OutcomeSendFailed, e.queueRow(h.ID).Outcome)
		require.Zero(t, e.cycle(d), "send_failed consumes the handoff")
		require.Len(t, e.dispatches(), 1)
		require.Len(t, e.notifications(), 1)
	})
}

// Outcome ordering: a failure before a success keeps the send order, and
// one success makes the dispatch dispatched.
func TestPartialSuccessKeepsSendOrder(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		const bad = "npub1bogus"
		good := w.solver()
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(bad), writeSolver(good.Pubkey())}, false))
		good.Expect(t, 1)
		ds := e.dispatches()
		require.Equal(t, "dispatched", ds[0].Status)
		require.Equal(t, bad+","+good.Pubkey(), ds[0].TargetSolver)
		ns := e.notifications()
		require.Len(t, ns, 2)
		require.Equal(t, []string{"failed", "sent"}, []string{ns[0].Status, ns[1].Status})
		require.Equal(t, ns[0].SentAt, ns[1].SentAt, "one timestamp for every row of a dispatch")
	})
}

// A payload missing required keys is a parse failure, consumed.
func TestMalformedPayloadRecordsParseFailedAndMovesOn(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		h := e.rawHandoff(`{"dispute_id":"d-malformed","this_is":"broken","missing_required_fields":true}`)
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		e.cycle(d)
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		pf := e.audits(audit.KindEscalationDispatchParseFailed)
		require.Len(t, pf, 1)
		p := payload(t, pf[0].Payload)
		require.ElementsMatch(t, []string{"dispute_id", "handoff_event_id", "reason", "detail"}, slices.Collect(maps.Keys(p)))
		require.Equal(t, "deserialize_failed", p["reason"])
		require.Equal(t, "d-malformed", p["dispute_id"])
		require.NotEmpty(t, p["detail"])
		require.Equal(t, json.Number(jsonNum(h.HandoffEventID)), p["handoff_event_id"])
		require.Nil(t, pf[0].SessionID)
		require.Equal(t, "phase3-default", *pf[0].PromptBundleID)
		require.Equal(t, handoff.OutcomeDeserializeFailed, e.queueRow(h.ID).Outcome)
		require.Zero(t, e.cycle(d))
		require.Len(t, e.audits(audit.KindEscalationDispatchParseFailed), 1)
	})
}

// A payload that names no dispute records "unknown".
func TestMalformedPayloadWithUnrecoverableDisputeIDUsesUnknown(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.rawHandoff(`this is not json at all {{{`)
		e.cycle(e.dispatcher(w.sender(), nil, false))
		pf := e.audits(audit.KindEscalationDispatchParseFailed)
		require.Len(t, pf, 1)
		require.Equal(t, "unknown", payload(t, pf[0].Payload)["dispute_id"])
		require.Equal(t, "deserialize_failed", payload(t, pf[0].Payload)["reason"])
	})
}

// A dispute intakesvc does not know is an orphan.
func TestOrphanDisputeReferenceRecordsParseFailed(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		h := e.handoff(samplePkg("d-orphan", ""))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		pf := e.audits(audit.KindEscalationDispatchParseFailed)
		require.Len(t, pf, 1)
		p := payload(t, pf[0].Payload)
		require.Equal(t, "orphan_dispute_reference", p["reason"])
		require.Equal(t, "dispute_id not found", p["detail"])
		require.Equal(t, "d-orphan", p["dispute_id"])
		require.Equal(t, handoff.OutcomeOrphanDisputeReference, e.queueRow(h.ID).Outcome)
		require.Empty(t, e.notifications())
	})
}

// A malformed handoff never blocks a valid one.
func TestPoisoningIsPrevented(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		bad := e.rawHandoff(`{"dispute_id":"d-1","trigger":5}`)
		good := e.handoff(samplePkg("d-1", ""))
		require.Less(t, bad.HandoffEventID, good.HandoffEventID)
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Equal(t, 2, e.cycle(d))
		s.Expect(t, 1)
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, good.HandoffEventID, ds[0].HandoffEventID)
		pf := e.audits(audit.KindEscalationDispatchParseFailed)
		require.Len(t, pf, 1)
		require.Equal(t, json.Number(jsonNum(bad.HandoffEventID)), payload(t, pf[0].Payload)["handoff_event_id"])
		require.Zero(t, e.cycle(d))
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Len(t, e.audits(audit.KindEscalationDispatchParseFailed), 1)
	})
}

// At least once: a crash after the sends and before the record leaves
// the handoff claimed; once the claim expires it is dispatched again and
// recorded once, and relaygw's idempotency keys mean the solver gets one DM.
func TestCrashBetweenSendAndRecord(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		crashed := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false, func(o *Options) {
			o.ClaimTimeout = 50e6 // 50 ms
			o.afterSend = func(*handoff.Handoff) error { return errors.New("killed") }
		})
		require.Equal(t, 1, e.cycle(crashed))
		s.Expect(t, 1)
		require.Empty(t, e.dispatches())
		require.Equal(t, handoff.StatusClaimed, e.queueRow(h.ID).Status, "the dead replica's claim stands until its deadline")

		other := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Eventually(t, func() bool { return e.cycle(other) == 1 }, 10e9, 20e6, "rescued after the claim deadline")
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Equal(t, "dispatched", ds[0].Status)
		s.Expect(t, 1)
		require.Len(t, e.notifications(), 1, "the abandoned attempt recorded nothing")
		q := e.queueRow(h.ID)
		require.Equal(t, handoff.StatusDone, q.Status)
		require.Equal(t, 2, q.Attempts)
		requirePaired(t, e)
	})
}

// The supersession and unroutable audit rows are
// deduplicated per handoff, not per dispute.
func TestParkAuditIsPerHandoff(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.dispute("d-r", "resolved", nil)
		e.dispute("d-u", "notified", nil)
		for range 2 {
			e.handoff(samplePkg("d-r", ""))
			e.handoff(samplePkg("d-u", ""))
		}
		d := e.dispatcher(w.sender(), nil, false)
		require.Equal(t, 4, e.cycle(d))
		require.Equal(t, 4, e.cycle(d))
		require.Len(t, e.audits(audit.KindEscalationSuperseded), 2, "one per handoff of the resolved dispute")
		require.Len(t, e.audits(audit.KindEscalationDispatchUnroutable), 2, "one per handoff of the unroutable dispute")
		require.Equal(t, 2, e.count(`SELECT count(DISTINCT payload_json ->> 'handoff_event_id') FROM mediation_events WHERE kind = 'escalation_superseded'`))
	})
}

// The dispatch's time is taken once, before the first send, as the
// reference does: created_at, dispatched_at, the audit row's occurred_at
// and every notification's sent_at are that instant, however long the
// sends take.
func TestDispatchTimeIsTakenBeforeTheSends(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clock := clockwork.NewFakeClockAt(time.Unix(1_750_000_000, 0))
	s := newMemSender()
	s.hook = func(context.Context, *relaygwv1.SendDirectMessageRequest) error {
		clock.Advance(90 * time.Second) // each send takes a minute and a half
		return nil
	}
	e.dispute("d-1", "notified", nil)
	e.handoff(samplePkg("d-1", ""))
	d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1)), writeSolver(key(2))}, false, func(o *Options) { o.Clock = clock })
	require.Equal(t, 1, e.cycle(d))
	require.Equal(t, time.Unix(1_750_000_180, 0), clock.Now(), "both sends ran on the clock")

	ds := e.dispatches()
	require.Len(t, ds, 1)
	require.Equal(t, int64(1_750_000_000), ds[0].CreatedAt)
	require.Equal(t, int64(1_750_000_000), ds[0].DispatchedAt, "dispatched_at is the pre-send time")
	as := e.audits(audit.KindEscalationDispatched)
	require.Len(t, as, 1)
	require.Equal(t, int64(1_750_000_000), as[0].OccurredAt, "occurred_at is the pre-send time")
	ns := e.notifications()
	require.Len(t, ns, 2)
	for _, n := range ns {
		require.Equal(t, int64(1_750_000_000), n.SentAt)
	}
}

// A package with "session_id": "" keeps the key, as the reference does:
// line 3 reads "Session: " and the JSON line has "session_id":"". The
// handoff is dispute-scoped in the tables (no session column).
func TestEmptySessionIDKeepsTheKey(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "notified", nil)
		const payload = `{"dispute_id":"d-1","session_id":"","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":["9f86d081884c"],"assembled_at":1745000000}`
		e.rawHandoff(payload)
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		body := s.Expect(t, 1)[0]
		lines := strings.Split(body, "\n")
		require.Equal(t, "Session: ", lines[2])
		//nolint:testifylint // byte-exact on purpose: the key order is part of the DM contract
		require.Equal(t, payload, lines[len(lines)-1], "the package re-serialised with the empty key")
		ds := e.dispatches()
		require.Len(t, ds, 1)
		require.Nil(t, ds[0].SessionID)
		as := e.audits(audit.KindEscalationDispatched)
		require.Len(t, as, 1)
		require.Nil(t, as[0].SessionID)
	})
}

// A dispute id intakesvc is never asked about: the empty one (no dispute
// has it) is an orphan at once, recorded under the "unknown" sentinel (the
// audit trail refuses a dispute-scoped row without a dispute).
func TestEmptyDisputeIDIsAnOrphan(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	h := e.rawHandoff(`{"dispute_id":"","trigger":"conflicting_claims","evidence_refs":[],"prompt_bundle_id":"phase3-default","policy_hash":"hash-1","rationale_refs":[],"assembled_at":1}`)
	e.cycle(e.dispatcher(newMemSender(), []config.SolverConfig{writeSolver(key(1))}, false))
	pf := e.audits(audit.KindEscalationDispatchParseFailed)
	require.Len(t, pf, 1)
	p := payload(t, pf[0].Payload)
	require.Equal(t, "orphan_dispute_reference", p["reason"])
	require.Equal(t, "unknown", p["dispute_id"])
	require.Equal(t, handoff.OutcomeOrphanDisputeReference, e.queueRow(h.ID).Outcome)
	require.Zero(t, e.intake.calls, "intakesvc is not asked")
}

// intakesvc unreachable: the handoff is neither an orphan nor routed
// without the dispute (an unknown assignment would broadcast); it returns
// to the queue and goes out, to the assigned solver only, once intakesvc
// answers.
func TestIntakesvcDownNeverOrphansNorMisroutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	s := newMemSender()
	e.dispute("d-1", "taken", ptr(key(2)))
	h := e.handoff(samplePkg("d-1", ""))
	d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1)), writeSolver(key(2))}, false)
	e.intake.setDown(true)
	for range 3 {
		require.Equal(t, 1, e.cycle(d))
	}
	q := e.queueRow(h.ID)
	require.Equal(t, handoff.StatusPending, q.Status)
	require.Equal(t, 3, q.ConsecutiveErrors)
	require.Contains(t, q.LastError, "dispute lookup failed")
	require.Zero(t, s.Total(), "no DM while the dispute is unknown")
	require.Empty(t, e.audits(audit.KindEscalationDispatchParseFailed), "not an orphan")
	require.Empty(t, e.dispatches())

	e.intake.setDown(false)
	require.Equal(t, 1, e.cycle(d))
	require.Len(t, s.Bodies(key(2)), 1, "the assigned solver")
	require.Empty(t, s.Bodies(key(1)), "no broadcast")
	require.Equal(t, handoff.StatusDone, e.queueRow(h.ID).Status)
}

// A record the audit trail refuses (here a handoff row naming an empty
// session id, which only hand-written SQL can produce) would be refused on
// every retry: the handoff fails at once, for an operator, instead of
// looping.
func TestARecordTheAuditTrailRefusesFailsTheHandoff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.dispute("d-1", "notified", nil)
	e.session("d-1", "")
	payload := string(samplePkg("d-1", "").Encode())
	var id int64
	require.NoError(t, e.pool.QueryRow(e.ctx, `
WITH ev AS (INSERT INTO mediation_events (kind, payload_json, occurred_at) VALUES ('handoff_prepared', $1::jsonb, 1) RETURNING id)
INSERT INTO handoffs (handoff_event_id, dispute_id, session_id, payload_json) SELECT id, 'd-1', '', $1 FROM ev RETURNING id`, payload).Scan(&id))
	s := newMemSender()
	d := e.dispatcher(s, []config.SolverConfig{writeSolver(key(1))}, false)
	require.Equal(t, 1, e.cycle(d))
	q := e.queueRow(id)
	require.Equal(t, handoff.StatusFailed, q.Status)
	require.Contains(t, q.LastError, "invalid audit event")
	require.Empty(t, e.dispatches(), "nothing half-recorded")
	require.Zero(t, e.cycle(d), "failed handoffs wait for an operator")
}

// relaygw refusing a send for good (here: the recipient's idempotency key
// was already used for another body) is a failed recipient, recorded and
// consumed, not retried: the real relaygw's typed reason over the wire.
func TestRelaygwRefusalIsAFailedRecipient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w, ok := newRelaygwWorld(t, e).(*relaygwWorld)
	require.True(t, ok)
	s := w.solver()
	e.dispute("d-1", "notified", nil)
	h := e.handoff(samplePkg("d-1", ""))
	_, err := w.h.Client.SendDirectMessage(e.ctx, &relaygwv1.SendDirectMessageRequest{
		RecipientPubkey: s.Pubkey(), Body: "another body", IdempotencyKey: IdempotencyKey(h.HandoffEventID, s.Pubkey()),
	})
	require.NoError(t, err)
	d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
	require.Equal(t, 1, e.cycle(d))
	ds := e.dispatches()
	require.Len(t, ds, 1)
	require.Equal(t, "send_failed", ds[0].Status)
	ns := e.notifications()
	require.Len(t, ns, 1)
	require.Equal(t, "failed", ns[0].Status)
	require.True(t, strings.HasPrefix(*ns[0].Error, "notification error: gift-wrap send failed: "), *ns[0].Error)
	require.Equal(t, handoff.OutcomeSendFailed, e.queueRow(h.ID).Outcome, "consumed, not retried")
	require.Equal(t, []string{"another body"}, s.Expect(t, 1), "only the earlier DM")
}

package dispatcher

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/services/escalationsvc/internal/route"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
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

// requirePaired checks SC-203: every dispatch row has exactly one
// escalation_dispatched row with its dispatch_id, and vice versa.
func requirePaired(t testing.TB, e *env) {
	t.Helper()
	require.Zero(t, e.count(`SELECT count(*) FROM escalation_dispatches d WHERE
 (SELECT count(*) FROM mediation_events m WHERE m.kind = 'escalation_dispatched' AND m.payload_json ->> 'dispatch_id' = d.dispatch_id) <> 1`),
		"dispatch rows without exactly one audit row")
	require.Zero(t, e.count(`SELECT count(*) FROM mediation_events m WHERE m.kind = 'escalation_dispatched' AND
 (SELECT count(*) FROM escalation_dispatches d WHERE d.dispatch_id = m.payload_json ->> 'dispatch_id') <> 1`),
		"audit rows without exactly one dispatch row")
}

// B17 #2 (plus the audit envelope of §B14 and the notifications of decision 7).
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

		as := e.audits(store.KindDispatched)
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

// B17 #3.
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

// B17 #4.
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

// B17 #5.
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

// B17 #6 and #7.
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

// B17 #8.
func TestResolvedDisputeIsSkippedNoDM(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "resolved", nil)
		e.session("d-1", "s-1")
		h := e.handoff(samplePkg("d-1", "s-1"))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		require.Empty(t, e.audits(store.KindDispatched))
		sup := e.audits(store.KindSuperseded)
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

// B17 #9.
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
		require.Empty(t, e.audits(store.KindSuperseded))
	})
}

// B17 #10.
func TestSupersessionDoesNotMarkHandoffConsumed(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		e.dispute("d-1", "resolved", nil)
		e.handoff(samplePkg("d-1", ""))
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		require.Equal(t, 1, e.cycle(d))
		require.Equal(t, 1, e.cycle(d), "the parked handoff is evaluated again")
		require.Len(t, e.audits(store.KindSuperseded), 1, "writer-side dedup")
		require.Empty(t, e.dispatches())
		e.setState("d-1", "notified")
		e.cycle(d)
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Len(t, e.audits(store.KindDispatched), 1)
		require.Len(t, e.audits(store.KindSuperseded), 1, "the supersession row is preserved")
	})
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// B17 #11 (and the ERROR log on every evaluation, §B8).
func TestZeroWriteSolversFallbackOffRecordsUnroutable(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		reader := w.solver()
		e.dispute("d-1", "notified", nil)
		h := e.handoff(samplePkg("d-1", ""))
		var logs syncBuffer
		d := e.dispatcher(w.sender(), []config.SolverConfig{readSolver(reader.Pubkey())}, false, func(o *Options) {
			o.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
		})
		e.cycle(d)
		e.cycle(d)
		reader.Expect(t, 0)
		require.Empty(t, e.dispatches())
		require.Empty(t, e.audits(store.KindDispatched))
		un := e.audits(store.KindUnroutable)
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

// B17 #12.
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
		require.Equal(t, true, payload(t, e.audits(store.KindDispatched)[0].Payload)["fallback_broadcast"])
		require.Empty(t, e.audits(store.KindUnroutable))
	})
}

// B17 #13.
func TestFallbackOnWithZeroSolversWritesUnroutable(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.dispute("d-1", "notified", nil)
		e.handoff(samplePkg("d-1", ""))
		e.cycle(e.dispatcher(w.sender(), nil, true))
		require.Empty(t, e.dispatches())
		un := e.audits(store.KindUnroutable)
		require.Len(t, un, 1)
		p := payload(t, un[0].Payload)
		require.Equal(t, json.Number("0"), p["configured_solver_count"])
		require.Equal(t, false, p["fallback_to_all_solvers"])
	})
}

// B17 #14: a replica started with a routable configuration dispatches a
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
		require.Len(t, e.audits(store.KindUnroutable), 1, "kept")
		require.Len(t, e.audits(store.KindDispatched), 1)
	})
}

// B17 #15, with a key that does not parse and one that parses but is not
// a point on the curve (both are "invalid pubkey", as in intakesvc).
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
		as := e.audits(store.KindDispatched)
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

// B10 outcome ordering: a failure before a success keeps the send order, and
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

// B17 #16.
func TestMalformedPayloadRecordsParseFailedAndMovesOn(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		h := e.rawHandoff(`{"dispute_id":"d-malformed","this_is":"broken","missing_required_fields":true}`)
		d := e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false)
		e.cycle(d)
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		pf := e.audits(store.KindParseFailed)
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
		require.Len(t, e.audits(store.KindParseFailed), 1)
	})
}

// B17 #17.
func TestMalformedPayloadWithUnrecoverableDisputeIDUsesUnknown(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		e.rawHandoff(`this is not json at all {{{`)
		e.cycle(e.dispatcher(w.sender(), nil, false))
		pf := e.audits(store.KindParseFailed)
		require.Len(t, pf, 1)
		require.Equal(t, "unknown", payload(t, pf[0].Payload)["dispute_id"])
		require.Equal(t, "deserialize_failed", payload(t, pf[0].Payload)["reason"])
	})
}

// B17 #18.
func TestOrphanDisputeReferenceRecordsParseFailed(t *testing.T) {
	scenario(t, func(t *testing.T, e *env, w world) {
		s := w.solver()
		h := e.handoff(samplePkg("d-orphan", ""))
		e.cycle(e.dispatcher(w.sender(), []config.SolverConfig{writeSolver(s.Pubkey())}, false))
		s.Expect(t, 0)
		require.Empty(t, e.dispatches())
		pf := e.audits(store.KindParseFailed)
		require.Len(t, pf, 1)
		p := payload(t, pf[0].Payload)
		require.Equal(t, "orphan_dispute_reference", p["reason"])
		require.Equal(t, "dispute_id not found", p["detail"])
		require.Equal(t, "d-orphan", p["dispute_id"])
		require.Equal(t, handoff.OutcomeOrphanDisputeReference, e.queueRow(h.ID).Outcome)
		require.Empty(t, e.notifications())
	})
}

// B17 #19.
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
		pf := e.audits(store.KindParseFailed)
		require.Len(t, pf, 1)
		require.Equal(t, json.Number(jsonNum(bad.HandoffEventID)), payload(t, pf[0].Payload)["handoff_event_id"])
		require.Zero(t, e.cycle(d))
		s.Expect(t, 1)
		require.Len(t, e.dispatches(), 1)
		require.Len(t, e.audits(store.KindParseFailed), 1)
	})
}

// §B12 at-least-once: a crash after the sends and before the record leaves
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

// §B17 tracker unit: the supersession and unroutable audit rows are
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
		require.Len(t, e.audits(store.KindSuperseded), 2, "one per handoff of the resolved dispute")
		require.Len(t, e.audits(store.KindUnroutable), 2, "one per handoff of the unroutable dispute")
		require.Equal(t, 2, e.count(`SELECT count(DISTINCT payload_json ->> 'handoff_event_id') FROM mediation_events WHERE kind = 'escalation_superseded'`))
	})
}

package reasoner_test

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/pgdbtest"
	"github.com/serbero/serbero/pkg/testkit/reasoningsim"
	"github.com/serbero/serbero/services/mediationsvc/internal/bundle"
	"github.com/serbero/serbero/services/mediationsvc/internal/policy"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoner"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/providers"
	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

const apiKey = "sk-sim-secret-key-123"

type fixture struct {
	db      *pgdbtest.DB
	sim     *reasoningsim.Sim
	core    *reasoner.Core
	store   *store.Store
	logs    *logBuffer
	reg     *prometheus.Registry
	clock   *clockwork.FakeClock
	healthy []bool
	mu      sync.Mutex
}

func newFixture(t *testing.T, script reasoningsim.Script) *fixture {
	t.Helper()
	f := &fixture{db: pgdbtest.NewDB(t), sim: reasoningsim.New(script), logs: &logBuffer{}, reg: prometheus.NewRegistry(), clock: clockwork.NewFakeClock()}
	f.sim.RequireKey(apiKey)
	srv := httptest.NewServer(f.sim.Handler())
	t.Cleanup(srv.Close)
	_, err := f.db.Pool.Exec(t.Context(), `
INSERT INTO disputes (dispute_id, event_id, mostro_pubkey, initiator_role, event_timestamp, detected_at)
VALUES ('d-1', 'e1', 'm', 'buyer', 100, 101), ('d-2', 'e2', 'm', 'seller', 200, 201)`)
	require.NoError(t, err)

	log := logging.New(f.logs, "json", slog.LevelDebug)
	m, err := reasoning.NewMetrics(f.reg)
	require.NoError(t, err)
	p, err := providers.Build(providers.Settings{
		Name: providers.OpenAICompatible, Model: "sim-model", APIBase: srv.URL + "/v1", APIKey: config.NewSecret(apiKey),
		RequestTimeoutSeconds: 5, FollowupRetryCount: 2, Logger: log, Observer: m.Observer(providers.OpenAICompatible),
	})
	require.NoError(t, err)
	f.store = store.New(f.db.Pool)
	f.core, err = reasoner.New(reasoner.Options{
		Provider: p, ProviderName: providers.OpenAICompatible, Model: "sim-model",
		Bundle: bundle.New("You are Serbero.", "classify well", "escalate when unsure", "be calm", "templates"),
		Store:  f.store, Metrics: m, Logger: log, Clock: f.clock, HealthTTL: time.Minute,
		OnHealth: func(ok bool) { f.mu.Lock(); f.healthy = append(f.healthy, ok); f.mu.Unlock() },
	})
	require.NoError(t, err)
	return f
}

const (
	openingRationale = "OPENING-RATIONALE the buyer's story is thin so far"
	midRationale     = "MIDSESSION-RATIONALE both accounts line up on the bank delay"
	summaryRationale = "SUMMARY-RATIONALE the seller confirmed the late arrival"
)

func conf(v float64) *float64 { return &v }

// The full classify → decide → store cycle of a session, with every log
// line captured: rationale texts and the API key never appear, ids do.
func TestFullCycleLogsNoRationale(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{Disputes: map[string]reasoningsim.Replies{"d-1": {
		Classify: []reasoningsim.Reply{
			{Kind: reasoningsim.KindAskClarification, Confidence: conf(0.4), Rationale: openingRationale},
			{Status: 429, RetryAfter: "0"},
			{Kind: reasoningsim.KindSummarize, Confidence: conf(0.85), Rationale: midRationale},
		},
		Summarize: []reasoningsim.Reply{{Kind: reasoningsim.KindSummary, Rationale: summaryRationale}},
	}}})
	ctx := t.Context()
	require.NoError(t, f.core.CheckHealth(ctx))

	// Opening: dispute-scoped, low confidence passes at Initial.
	open, err := f.core.Classify(ctx, reasoner.ClassifyInput{DisputeID: "d-1", InitiatorRole: "buyer", Round: policy.Initial()})
	require.NoError(t, err)
	require.Equal(t, policy.OutcomeAskClarification, open.Decision.Outcome)
	require.Equal(t, reasoningsim.DefaultBuyerText, open.Decision.BuyerText)
	occ, err := f.core.RecordRationale(ctx, nil, open.Response.Rationale, reasoner.Scope{DisputeID: "d-1", Operation: store.OperationClassify, Bundle: open.Bundle})
	require.NoError(t, err)
	require.Equal(t, reasoning.RationaleID(openingRationale), occ.RationaleID)
	require.Equal(t, "sim-model", occ.Model)
	require.Equal(t, f.core.Bundle().PolicyHash, occ.PolicyHash)

	_, err = f.db.Pool.Exec(ctx, `INSERT INTO mediation_sessions (session_id, dispute_id, state, prompt_bundle_id, policy_hash, started_at, last_transition_at)
VALUES ('s-1', 'd-1', 'awaiting_response', $1, $2, 1, 1)`, open.Bundle.ID, open.Bundle.PolicyHash)
	require.NoError(t, err)
	require.NoError(t, f.core.BindRationale(ctx, nil, occ, "s-1"))

	// Mid-session, through a 429: summarize.
	mid, err := f.core.Classify(ctx, reasoner.ClassifyInput{
		DisputeID: "d-1", SessionID: "s-1", InitiatorRole: "buyer", RoundCount: 1, Round: policy.MidSession(1),
		Transcript: []reasoning.TranscriptLine{
			{Party: reasoning.PartySerbero, InnerEventCreatedAt: 10, Content: "Buyer: " + open.Decision.BuyerText},
			{Party: reasoning.PartyBuyer, InnerEventCreatedAt: 20, Content: "I paid yesterday, the bank was slow"},
		},
	})
	require.NoError(t, err)
	require.Equal(t, policy.OutcomeSummarize, mid.Decision.Outcome)
	_, err = f.core.RecordRationale(ctx, nil, mid.Response.Rationale, reasoner.Scope{DisputeID: "d-1", SessionID: "s-1", Operation: store.OperationClassify, Bundle: mid.Bundle})
	require.NoError(t, err)

	sum, err := f.core.Summarize(ctx, reasoner.SummarizeInput{DisputeID: "d-1", SessionID: "s-1", Classification: mid.Decision.Classification, Confidence: mid.Decision.Confidence})
	require.NoError(t, err)
	require.Nil(t, sum.Rejection)
	require.Equal(t, reasoningsim.DefaultSummary, sum.Response.SummaryText)
	_, err = f.core.RecordRationale(ctx, nil, sum.Response.Rationale, reasoner.Scope{DisputeID: "d-1", SessionID: "s-1", Operation: store.OperationSummarize})
	require.NoError(t, err)

	// Stored: three occurrences, all bound to s-1.
	list, err := f.store.RationaleOccurrences(ctx, "d-1")
	require.NoError(t, err)
	require.Len(t, list, 3)
	for _, o := range list {
		require.Equal(t, "s-1", o.SessionID)
	}

	// The requests carried the bundle and the session metadata.
	reqs := f.sim.RequestsFor("d-1", reasoningsim.OpClassify)
	require.Len(t, reqs, 3, "opening, the 429, the retry")
	require.Contains(t, string(reqs[0].Body), "session_id: d-1", "the opening call sends the dispute id as session id")
	require.Contains(t, string(reqs[2].Body), "session_id: s-1")
	require.Contains(t, string(reqs[2].Body), "I paid yesterday")
	require.Contains(t, string(reqs[2].Body), "You are Serbero.")

	logs := f.logs.String()
	require.NotEmpty(t, logs)
	for _, secret := range []string{openingRationale, midRationale, summaryRationale, "OPENING-RATIONALE", "MIDSESSION", "SUMMARY-RATIONALE", apiKey, "I paid yesterday"} {
		require.NotContains(t, logs, secret)
	}
	require.Contains(t, logs, reasoning.RationaleID(openingRationale))
	require.Contains(t, logs, "bytes redacted>")
	require.Contains(t, logs, `"msg":"reasoning response received"`)

	// Metrics.
	require.InDelta(t, 2, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_reasoning_calls_total", "provider", "openai-compatible", "operation", "classify", "outcome", "ok")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_reasoning_retries_total", "provider", "openai-compatible", "operation", "classify", "reason", "http_429")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_policy_decisions_total", "outcome", "ask_clarification", "trigger", "none")), 0)
	require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_policy_decisions_total", "outcome", "summarize", "trigger", "none")), 0)
	require.Greater(t, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_reasoning_tokens_total", "provider", "openai-compatible", "operation", "classify", "kind", "prompt")), 0.0)
	require.InDelta(t, 1, testutil.ToFloat64(mustGauge(t, f.reg, "serbero_mediationsvc_reasoning_healthy", "provider", "openai-compatible")), 0)
}

func mustCounter(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	return metric(t, reg, name, labels...)
}

func mustGauge(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	return metric(t, reg, name, labels...)
}

// metric finds one labelled series by gathering the registry.
func metric(t *testing.T, reg *prometheus.Registry, name string, labels ...string) prometheus.Collector {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	families, err := reg.Gather()
	require.NoError(t, err)
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
	series:
		for _, m := range fam.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue series
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
			g.Set(v)
			return g
		}
	}
	t.Fatalf("no series %s %v", name, labels)
	return nil
}

func TestClassifyEscalations(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{Disputes: map[string]reasoningsim.Replies{
		"d-1": {Classify: []reasoningsim.Reply{{Kind: reasoningsim.KindFraud}}},
		"d-2": {Classify: []reasoningsim.Reply{{Kind: reasoningsim.KindEscalate}}},
	}})
	ctx := t.Context()
	fraud, err := f.core.Classify(ctx, reasoner.ClassifyInput{DisputeID: "d-1", InitiatorRole: "buyer", Round: policy.Initial()})
	require.NoError(t, err)
	require.Equal(t, policy.Decision{Outcome: policy.OutcomeEscalate, Trigger: policy.TriggerFraudIndicator, Classification: reasoning.LabelSuspectedFraud, Confidence: 0.95, Rule: "fraud_flag"}, fraud.Decision)
	model, err := f.core.Classify(ctx, reasoner.ClassifyInput{DisputeID: "d-2", InitiatorRole: "seller", Round: policy.Initial()})
	require.NoError(t, err)
	require.Equal(t, policy.TriggerReasoningUnavailable, model.Decision.Trigger)
	require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_policy_decisions_total", "outcome", "escalate", "trigger", "fraud_indicator")), 0)
}

// A failed call is typed (the engine's reasoning_call_failed category) and
// its text stays out of the category.
func TestClassifyFailures(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{Disputes: map[string]reasoningsim.Replies{
		"d-1": {Classify: []reasoningsim.Reply{{Status: 503}}},
		"d-2": {Classify: []reasoningsim.Reply{{Kind: reasoningsim.KindMalformed}}},
	}})
	ctx := t.Context()
	_, err := f.core.Classify(ctx, reasoner.ClassifyInput{DisputeID: "d-1", InitiatorRole: "buyer"})
	require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
	require.Len(t, f.sim.RequestsFor("d-1", reasoningsim.OpClassify), 3, "503 retried: followup_retry_count 2")
	require.Equal(t, policy.TriggerReasoningUnavailable, reasoner.FailedDecision().Trigger)

	_, err = f.core.Classify(ctx, reasoner.ClassifyInput{DisputeID: "d-2", InitiatorRole: "seller"})
	require.Equal(t, reasoning.CategoryMalformedResponse, reasoning.CategoryOf(err))
	require.Len(t, f.sim.RequestsFor("d-2", reasoningsim.OpClassify), 1, "a malformed answer is not retried")
	require.InDelta(t, 1, testutil.ToFloat64(mustCounter(t, f.reg, "serbero_mediationsvc_reasoning_calls_total", "provider", "openai-compatible", "operation", "classify", "outcome", "malformed_response")), 0)

	_, err = f.core.Classify(ctx, reasoner.ClassifyInput{})
	require.Error(t, err)
}

func TestSummaryRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{Disputes: map[string]reasoningsim.Replies{
		"d-1": {Summarize: []reasoningsim.Reply{{Kind: reasoningsim.KindSummary, NextStep: "Solver should release the funds to the buyer."}}},
	}})
	s, err := f.core.Summarize(t.Context(), reasoner.SummarizeInput{DisputeID: "d-1", SessionID: "s-1", Classification: reasoning.LabelCoordinationFailureResolvable, Confidence: 0.9})
	require.NoError(t, err)
	require.NotNil(t, s.Rejection)
	require.Equal(t, policy.TriggerAuthorityBoundaryAttempt, s.Rejection.Trigger)
	require.Equal(t, "authority boundary attempt in summary", s.Rejection.Reason)
}

// Health is checked at most once per TTL, and every result is published.
func TestHealthCached(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{})
	ctx := t.Context()
	health := func() int {
		n := 0
		for _, r := range f.sim.Requests() {
			if r.Op == reasoningsim.OpHealth {
				n++
			}
		}
		return n
	}
	require.NoError(t, f.core.Health(ctx))
	require.NoError(t, f.core.Health(ctx))
	require.Equal(t, 1, health(), "cached")
	f.clock.Advance(59 * time.Second)
	require.NoError(t, f.core.Health(ctx))
	require.Equal(t, 1, health())
	f.clock.Advance(2 * time.Second)
	require.NoError(t, f.core.Health(ctx))
	require.Equal(t, 2, health(), "refreshed after the TTL")

	f.sim.SetScript(reasoningsim.Script{Default: reasoningsim.Replies{Health: []reasoningsim.Reply{{Status: 401}}}})
	require.NoError(t, f.core.Health(ctx), "still the cached result")
	err := f.core.CheckHealth(ctx)
	require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
	require.Error(t, f.core.Health(ctx), "the failure is cached too")
	f.mu.Lock()
	require.Equal(t, []bool{true, true, false}, f.healthy)
	f.mu.Unlock()
	require.InDelta(t, 0, testutil.ToFloat64(mustGauge(t, f.reg, "serbero_mediationsvc_reasoning_healthy", "provider", "openai-compatible")), 0)
}

// A session's pinned bundle is found after a restart with changed files:
// the loaded one, or one stored earlier; otherwise policy_bundle_missing.
func TestBundleByHash(t *testing.T) {
	t.Parallel()
	f := newFixture(t, reasoningsim.Script{})
	ctx := t.Context()
	require.NoError(t, f.core.SaveBundle(ctx))
	loaded := f.core.Bundle()
	got, err := f.core.BundleByHash(ctx, loaded.PolicyHash)
	require.NoError(t, err)
	require.Equal(t, loaded, got)

	old := bundle.New("s", "c", "e", "m", "t")
	require.NoError(t, f.store.SaveBundle(ctx, store.PromptBundle{PolicyHash: old.PolicyHash, PromptBundleID: old.ID,
		System: old.System, Classification: old.Classification, Escalation: old.Escalation, MediationStyle: old.MediationStyle, MessageTemplates: old.MessageTemplates}, 1))
	got, err = f.core.BundleByHash(ctx, old.PolicyHash)
	require.NoError(t, err)
	require.Equal(t, old, got)

	_, err = f.core.BundleByHash(ctx, strings.Repeat("ab", 32))
	require.ErrorIs(t, err, reasoner.ErrBundleMissing)

	// The loaded bundle is stored: a fresh core with other files finds it.
	stored, err := f.store.BundleByHash(ctx, loaded.PolicyHash)
	require.NoError(t, err)
	require.Equal(t, loaded.System, stored.System)
}

package reasoning

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the reasoning and policy metrics of mediationsvc. A nil
// *Metrics records nothing.
type Metrics struct {
	calls     *prometheus.CounterVec
	latency   *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	tokens    *prometheus.CounterVec
	healthy   *prometheus.GaugeVec
	decisions *prometheus.CounterVec
}

// Metric label values that are not categories.
const (
	OutcomeOK = "ok"
	// TriggerNone labels a decision without an escalation trigger.
	TriggerNone = "none"
)

// NewMetrics registers the metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_mediationsvc_reasoning_calls_total",
			Help: "Reasoning provider calls by provider, operation and outcome (ok or the error category).",
		}, []string{"provider", "operation", "outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "serbero_mediationsvc_reasoning_call_duration_seconds",
			Help:    "Reasoning provider call latency, retries included.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120},
		}, []string{"provider", "operation"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_mediationsvc_reasoning_retries_total",
			Help: "Reasoning HTTP attempts retried, by reason (timeout, transport, http_408, http_429, http_5xx).",
		}, []string{"provider", "operation", "reason"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_mediationsvc_reasoning_tokens_total",
			Help: "Tokens the provider reported using, by kind (prompt, completion).",
		}, []string{"provider", "operation", "kind"}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serbero_mediationsvc_reasoning_healthy",
			Help: "1 when the last reasoning health check passed, else 0.",
		}, []string{"provider"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_mediationsvc_policy_decisions_total",
			Help: "Policy decisions by outcome (ask_clarification, summarize, escalate, summary_accepted) and trigger (none when not escalated).",
		}, []string{"outcome", "trigger"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.latency, m.retries, m.tokens, m.healthy, m.decisions} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register reasoning metrics: %w", err)
			}
		}
	}
	return m, nil
}

// Observer receives what an adapter sees below the call level.
type Observer interface {
	// Retry counts one retried attempt.
	Retry(op Operation, reason string)
	// Tokens counts the usage the provider reported.
	Tokens(op Operation, prompt, completion int64)
}

// Observer returns the Observer of one provider (nil-safe).
func (m *Metrics) Observer(provider string) Observer {
	return providerObserver{m: m, provider: provider}
}

type providerObserver struct {
	m        *Metrics
	provider string
}

func (o providerObserver) Retry(op Operation, reason string) {
	if o.m == nil {
		return
	}
	o.m.retries.WithLabelValues(o.provider, string(op), reason).Inc()
}

func (o providerObserver) Tokens(op Operation, prompt, completion int64) {
	if o.m == nil {
		return
	}
	if prompt > 0 {
		o.m.tokens.WithLabelValues(o.provider, string(op), "prompt").Add(float64(prompt))
	}
	if completion > 0 {
		o.m.tokens.WithLabelValues(o.provider, string(op), "completion").Add(float64(completion))
	}
}

// SetHealthy records the last health result of provider.
func (m *Metrics) SetHealthy(provider string, ok bool) {
	if m == nil {
		return
	}
	v := 0.0
	if ok {
		v = 1
	}
	m.healthy.WithLabelValues(provider).Set(v)
}

// Decision counts one policy decision.
func (m *Metrics) Decision(outcome, trigger string) {
	if m == nil {
		return
	}
	if trigger == "" {
		trigger = TriggerNone
	}
	m.decisions.WithLabelValues(outcome, trigger).Inc()
}

func (m *Metrics) call(provider string, op Operation, start time.Time, err error) {
	if m == nil {
		return
	}
	outcome := OutcomeOK
	if err != nil {
		outcome = string(CategoryOf(err))
	}
	m.calls.WithLabelValues(provider, string(op), outcome).Inc()
	m.latency.WithLabelValues(provider, string(op)).Observe(time.Since(start).Seconds())
}

// Instrument wraps p so every call is counted and timed under provider.
// Errors that are not *Error (a cancelled context, say) become *Error of
// category unknown, so callers can always read a category.
func Instrument(p Provider, m *Metrics, provider string) Provider {
	return instrumented{p: p, m: m, provider: provider}
}

type instrumented struct {
	p        Provider
	m        *Metrics
	provider string
}

func (i instrumented) Classify(ctx context.Context, req ClassificationRequest) (ClassificationResponse, error) {
	start := time.Now()
	resp, err := i.p.Classify(ctx, req)
	err = typed(err)
	i.m.call(i.provider, OpClassify, start, err)
	return resp, err
}

func (i instrumented) Summarize(ctx context.Context, req SummaryRequest) (SummaryResponse, error) {
	start := time.Now()
	resp, err := i.p.Summarize(ctx, req)
	err = typed(err)
	i.m.call(i.provider, OpSummarize, start, err)
	return resp, err
}

func (i instrumented) HealthCheck(ctx context.Context) error {
	start := time.Now()
	err := typed(i.p.HealthCheck(ctx))
	i.m.call(i.provider, OpHealth, start, err)
	return err
}

func typed(err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Timeout(err)
	}
	return &Error{Category: CategoryUnknown, Err: err}
}

package engine

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/services/mediationsvc/internal/store"
)

// Metrics are the engine's Prometheus metrics (names in docs/deploy.md).
type Metrics struct {
	opens, startAttempts, rounds, summaries, outbound prometheus.Counter
	startStops, takes, escalations, dms, inbound      *prometheus.CounterVec
	superseded                                        *prometheus.CounterVec
	toFirstMessage                                    prometheus.Histogram
	toOutcome                                         *prometheus.HistogramVec
}

// NewMetrics registers the engine's metrics on reg (nil: unregistered).
// counts, when set, backs serbero_mediationsvc_sessions{state}.
func NewMetrics(reg prometheus.Registerer, counts func(context.Context) (map[string]int64, error)) (*Metrics, error) {
	m := &Metrics{
		opens:         prometheus.NewCounter(prometheus.CounterOpts{Name: "serbero_mediationsvc_session_opens_total", Help: "Mediation sessions opened."}),
		startAttempts: prometheus.NewCounter(prometheus.CounterOpts{Name: "serbero_mediationsvc_start_attempts_total", Help: "Start attempts (start_attempt_started)."}),
		rounds:        prometheus.NewCounter(prometheus.CounterOpts{Name: "serbero_mediationsvc_followup_rounds_total", Help: "Follow-up rounds decided."}),
		summaries:     prometheus.NewCounter(prometheus.CounterOpts{Name: "serbero_mediationsvc_summaries_delivered_total", Help: "Cooperative summaries delivered to solvers."}),
		outbound:      prometheus.NewCounter(prometheus.CounterOpts{Name: "serbero_mediationsvc_party_messages_sent_total", Help: "Party messages sent through the dispute chat."}),
		startStops: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_start_stops_total",
			Help: "Start attempts that stopped before a session, by stop reason."}, []string{"reason"}),
		takes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_takes_total",
			Help: "admin-take-dispute attempts by outcome (took, cant_do, no_reply, no_evidence)."}, []string{"outcome"}),
		escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_escalations_total",
			Help: "Escalations recommended (handoffs enqueued), by trigger."}, []string{"trigger"}),
		dms: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_solver_dms_sent_total",
			Help: "Solver DMs delivered, by notif_type."}, []string{"notif_type"}),
		inbound: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_party_lines_total",
			Help: "Party chat lines ingested, by result (fresh, stale, duplicate)."}, []string{"result"}),
		superseded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "serbero_mediationsvc_sessions_superseded_total",
			Help: "Live sessions ended by a human or by Mostro, by reason."}, []string{"reason"}),
		toFirstMessage: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "serbero_mediationsvc_detection_to_first_message_seconds",
			Help: "Time from the dispute's detection to the first party message.", Buckets: prometheus.ExponentialBuckets(0.05, 2, 16)}),
		toOutcome: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "serbero_mediationsvc_detection_to_outcome_seconds",
			Help: "Time from the dispute's detection to the session's outcome (summarized, escalated).", Buckets: prometheus.ExponentialBuckets(1, 2, 18)}, []string{"outcome"}),
	}
	if reg == nil {
		return m, nil
	}
	cs := []prometheus.Collector{m.opens, m.startAttempts, m.rounds, m.summaries, m.outbound, m.startStops, m.takes,
		m.escalations, m.dms, m.inbound, m.superseded, m.toFirstMessage, m.toOutcome}
	if counts != nil {
		cs = append(cs, &stateCollector{counts: counts, desc: prometheus.NewDesc("serbero_mediationsvc_sessions",
			"Mediation sessions by state.", []string{"state"}, nil)})
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) firstMessage(s store.EngineSession, now time.Time) {
	if s.DetectedAt != nil && *s.DetectedAt > 0 {
		m.toFirstMessage.Observe(max(now.Sub(time.Unix(*s.DetectedAt, 0)).Seconds(), 0))
	}
}

func (m *Metrics) outcome(s store.EngineSession, outcome string, now time.Time) {
	if s.DetectedAt != nil && *s.DetectedAt > 0 {
		m.toOutcome.WithLabelValues(outcome).Observe(max(now.Sub(time.Unix(*s.DetectedAt, 0)).Seconds(), 0))
	}
}

type stateCollector struct {
	counts func(context.Context) (map[string]int64, error)
	desc   *prometheus.Desc
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	counts, err := c.counts(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.desc, err)
		return
	}
	for st, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), st)
	}
}

// Package metrics holds escalationsvc's Prometheus collectors
// (serbero_escalationsvc_*; the contract is docs/escalation.md#metrics).
package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/audit"
	"github.com/serbero/serbero/pkg/handoff"
	"github.com/serbero/serbero/services/escalationsvc/internal/store"
)

// Metrics are the dispatcher's counters and its latency histogram.
type Metrics struct {
	// Claimed counts handoffs claimed (a parked handoff claimed again
	// counts again).
	Claimed prometheus.Counter
	// Dispatched counts dispatch rows recorded with status dispatched.
	Dispatched prometheus.Counter
	// SendFailed counts dispatch rows recorded with status send_failed.
	SendFailed prometheus.Counter
	// Superseded counts escalation_superseded audit rows written (at most
	// one per handoff).
	Superseded prometheus.Counter
	// Unroutable counts escalation_dispatch_unroutable audit rows written
	// (at most one per handoff).
	Unroutable prometheus.Counter
	// ParseFailed counts escalation_dispatch_parse_failed rows by reason.
	ParseFailed *prometheus.CounterVec
	// Retried counts handoffs returned to the queue after a transient
	// error, and Failed those given up on.
	Retried prometheus.Counter
	Failed  prometheus.Counter
	// Rescued counts expired claims returned to the queue.
	Rescued prometheus.Counter
	// DispatchLatency is the time from the handoff's commit to a relay
	// accepting its DM, per recipient.
	DispatchLatency prometheus.Histogram
}

// New registers the collectors on reg (a private registry when reg is
// nil). reporter backs the queue gauges, read at scrape time (nil: none).
func New(reg prometheus.Registerer, reporter *store.Reporter, log *slog.Logger) *Metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "serbero", Subsystem: "escalationsvc", Name: name, Help: help})
	}
	m := &Metrics{
		Claimed:    counter("handoffs_claimed_total", "Handoffs claimed from the queue."),
		Dispatched: counter("dispatched_total", "Handoffs dispatched (at least one recipient reached)."),
		SendFailed: counter("send_failed_total", "Handoffs recorded as send_failed (no recipient reached)."),
		Superseded: counter("superseded_total", "Handoffs skipped because their dispute was already resolved (once per handoff)."),
		Unroutable: counter("unroutable_total", "Handoffs found unroutable (once per handoff)."),
		ParseFailed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "serbero", Subsystem: "escalationsvc", Name: "parse_failed_total",
			Help: "Handoffs consumed as parse-failed, by reason (deserialize_failed, orphan_dispute_reference).",
		}, []string{"reason"}),
		Retried: counter("handoffs_retried_total", "Handoffs returned to the queue after a transient error."),
		Failed:  counter("handoffs_failed_total", "Handoffs given up on after repeated errors (need an operator)."),
		Rescued: counter("claims_rescued_total", "Expired claims (dead claimers) returned to the queue."),
		DispatchLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "serbero", Subsystem: "escalationsvc", Name: "dispatch_latency_seconds",
			Help:    "Time from a handoff's commit to a relay accepting its DM, per recipient.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
	}
	for _, reason := range []string{audit.ParseFailedDeserialize, audit.ParseFailedOrphan} {
		m.ParseFailed.WithLabelValues(reason) // exported as 0 from the start
	}
	reg.MustRegister(m.Claimed, m.Dispatched, m.SendFailed, m.Superseded, m.Unroutable, m.ParseFailed,
		m.Retried, m.Failed, m.Rescued, m.DispatchLatency, &queueCollector{reporter: reporter, log: log})
	return m
}

var (
	depthDesc = prometheus.NewDesc("serbero_escalationsvc_queue_depth",
		"Handoffs in the queue by status (done rows excluded). Reported by one replica (the reporter), 0 on the others: sum across replicas.",
		[]string{"status"}, nil)
	dueDesc = prometheus.NewDesc("serbero_escalationsvc_queue_due",
		"Handoffs due now (pending or parked whose retry time has come). Reported by the reporter, 0 on the others: sum across replicas.", nil, nil)
	oldestDesc = prometheus.NewDesc("serbero_escalationsvc_oldest_pending_age_seconds",
		"How long the oldest due handoff (pending, or parked and due) has waited; 0 when none. Reported by the reporter, 0 on the others: sum or max across replicas.", nil, nil)
	reporterDesc = prometheus.NewDesc("serbero_escalationsvc_queue_reporter",
		"1 on the one replica that reports the queue gauges, 0 on the others (and while the database is unreachable).", nil, nil)
)

// queueStatuses are the statuses queue_depth reports (done only grows).
var queueStatuses = []handoff.Status{handoff.StatusPending, handoff.StatusClaimed, handoff.StatusParked, handoff.StatusFailed}

// queueCollector reads the queue at scrape time. Only the replica that
// holds the reporter role reports the queue's numbers; every other replica
// reports 0, so a sum across replicas (what an autoscaler computes) is the
// queue's true size. See docs/escalation.md#metrics.
type queueCollector struct {
	reporter *store.Reporter
	log      *slog.Logger
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- depthDesc
	ch <- dueDesc
	ch <- oldestDesc
	ch <- reporterDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	if c.reporter == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	st, reporting, err := c.reporter.Stats(ctx)
	if err != nil {
		if c.log != nil {
			c.log.Warn("queue metrics unavailable", "error", err)
		}
		ch <- prometheus.MustNewConstMetric(reporterDesc, prometheus.GaugeValue, 0)
		return
	}
	if !reporting {
		st = handoff.Stats{ByStatus: map[handoff.Status]int64{}}
	}
	for _, s := range queueStatuses {
		ch <- prometheus.MustNewConstMetric(depthDesc, prometheus.GaugeValue, float64(st.ByStatus[s]), string(s))
	}
	ch <- prometheus.MustNewConstMetric(dueDesc, prometheus.GaugeValue, float64(st.Due))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, st.OldestDueAge.Seconds())
	ch <- prometheus.MustNewConstMetric(reporterDesc, prometheus.GaugeValue, b2f(reporting))
}

// scrapeTimeout bounds the queue read of one scrape.
const scrapeTimeout = 2 * time.Second

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

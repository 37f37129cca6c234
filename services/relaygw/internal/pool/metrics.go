package pool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/pkg/mostro/relayconn"
)

// Metrics are the pool's Prometheus collectors, labelled by relay URL.
type Metrics struct {
	connected *prometheus.GaugeVec
	failures  *prometheus.CounterVec
	events    *prometheus.CounterVec
	lastEvent *prometheus.GaugeVec
	published *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	notices   *prometheus.CounterVec
	pages     *prometheus.CounterVec
	pageSkips *prometheus.CounterVec
}

// NewMetrics registers the pool's collectors on reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serbero_relaygw_relay_connected",
			Help: "1 while relaygw is connected to the relay, else 0.",
		}, []string{"relay"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_connection_failures_total",
			Help: "Failed connection attempts and lost connections, per relay.",
		}, []string{"relay"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_events_received_total",
			Help: "Events delivered by the relay on relaygw's subscriptions (before verification and dedup).",
		}, []string{"relay"}),
		lastEvent: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serbero_relaygw_relay_last_event_timestamp_seconds",
			Help: "Unix time of the last event received from the relay.",
		}, []string{"relay"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_publish_results_total",
			Help: "Publish attempts per relay and outcome (accepted, rejected, timed_out, not_connected).",
		}, []string{"relay", "outcome"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_messages_dropped_total",
			Help: "Relay messages dropped unread, per relay and reason (oversized: above the read limit; malformed; unknown_subscription; unrequested: matches no filter of its subscription; overflow: the subscription's buffer was full, it re-subscribes).",
		}, []string{"relay", "reason"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_notices_total",
			Help: "NOTICE messages received from the relay (logged at most every 10 s).",
		}, []string{"relay"}),
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_backlog_pages_total",
			Help: "Extra REQs sent to page backwards through a relay's capped answer of stored events.",
		}, []string{"relay"}),
		pageSkips: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_relaygw_relay_backlog_second_skips_total",
			Help: "Times a page of stored events was full of one second's events and paging stepped past that second (events of it beyond the relay's cap are unreachable).",
		}, []string{"relay"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.failures, m.events, m.lastEvent, m.published, m.dropped, m.notices, m.pages, m.pageSkips} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register relay pool metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) init(url string) {
	m.connected.WithLabelValues(url).Set(0)
	m.failures.WithLabelValues(url)
	m.events.WithLabelValues(url)
	for _, o := range []Outcome{Accepted, Rejected, TimedOut, NotConnected} {
		m.published.WithLabelValues(url, o.String())
	}
	for _, r := range relayconn.DropReasons() {
		m.dropped.WithLabelValues(url, string(r))
	}
	m.notices.WithLabelValues(url)
	m.pages.WithLabelValues(url)
	m.pageSkips.WithLabelValues(url)
}

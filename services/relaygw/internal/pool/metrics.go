package pool

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the pool's Prometheus collectors, labelled by relay URL.
type Metrics struct {
	connected *prometheus.GaugeVec
	failures  *prometheus.CounterVec
	events    *prometheus.CounterVec
	lastEvent *prometheus.GaugeVec
	published *prometheus.CounterVec
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
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.connected, m.failures, m.events, m.lastEvent, m.published} {
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
}

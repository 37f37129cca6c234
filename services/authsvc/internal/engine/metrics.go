package engine

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/services/authsvc/internal/revalidation"
)

// Metrics are authsvc's own collectors (serbero_authsvc_*).
type Metrics struct {
	state         *prometheus.GaugeVec
	version       prometheus.Gauge
	attempts      *prometheus.CounterVec
	transitions   *prometheus.CounterVec
	leader        prometheus.Gauge
	auditFailures prometheus.Counter
	staleReports  prometheus.Counter
}

// NewMetrics builds unregistered collectors.
func NewMetrics() *Metrics {
	return &Metrics{
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "serbero_authsvc_state",
			Help: "1 for the solver-authorization state this replica currently answers, 0 for the others.",
		}, []string{"state"}),
		version: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serbero_authsvc_state_version",
			Help: "Version of the solver-authorization state this replica answers with.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_authsvc_attempts_total",
			Help: "Revalidation attempts finished by this replica, by result (success or failure).",
		}, []string{"result"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "serbero_authsvc_transitions_total",
			Help: "State transitions committed by this replica.",
		}, []string{"from", "to"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "serbero_authsvc_loop_leader",
			Help: "1 while this replica holds the lease and runs the revalidation loop.",
		}),
		auditFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serbero_authsvc_audit_write_failures_total",
			Help: "Audit rows (auth_retry_*) that could not be written; the state moved on regardless.",
		}),
		staleReports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "serbero_authsvc_stale_reports_total",
			Help: "Take outcomes against authorization ignored because they were observed before the current proof.",
		}),
	}
}

// Register registers every collector; nil reg is a no-op.
func (m *Metrics) Register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.state, m.version, m.attempts, m.transitions, m.leader, m.auditFailures, m.staleReports} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				continue
			}
			return err
		}
	}
	return nil
}

func (m *Metrics) observeState(st revalidation.State) {
	for _, s := range revalidation.Statuses {
		v := 0.0
		if s == st.Status {
			v = 1
		}
		m.state.WithLabelValues(s.String()).Set(v)
	}
	m.version.Set(float64(st.Version))
}

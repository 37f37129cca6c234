// Package metrics holds intakesvc's Prometheus collectors
// (serbero_intakesvc_*): one counter per log event the reference daemon
// names, the per-state gauge, the intake cursor, the DM latency histogram,
// and the counters of quarantined events, backfilled events and retention.
// Every unit of intakesvc records into the one *Metrics the service builds.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/serbero/serbero/services/intakesvc/internal/lifecycle"
)

// Metrics are intakesvc's Prometheus collectors (serbero_intakesvc_*), one
// per reference log event plus the per-state gauge.
type Metrics struct {
	EventsReceived        prometheus.Counter
	EventsRejected        *prometheus.CounterVec
	Detected              *prometheus.CounterVec
	DuplicateSkips        prometheus.Counter
	StaleRevisions        prometheus.Counter
	UnknownStatuses       prometheus.Counter
	PersistenceFailures   prometheus.Counter
	IllegalTransitions    prometheus.Counter
	NotificationsSent     *prometheus.CounterVec
	NotificationsFailed   *prometheus.CounterVec
	NotificationsSkipped  *prometheus.CounterVec
	Transitions           *prometheus.CounterVec
	Assignments           prometheus.Counter
	ResolvedExternally    prometheus.Counter
	RenotificationTicks   prometheus.Counter
	RenotificationBatches *prometheus.CounterVec
	Disputes              *prometheus.GaugeVec
	Cursor                prometheus.Gauge
	DetectToSent          prometheus.Histogram
	// Quarantined counts events set aside because applying them failed
	// for good, by class (see docs/intake.md#poison-events).
	Quarantined *prometheus.CounterVec
	// Backfilled counts events relaygw marked as backfill, by what
	// happened to them: notified (still initiated) or silent.
	Backfilled *prometheus.CounterVec
	// RetentionDeleted counts rows removed by the retention job, by table.
	RetentionDeleted *prometheus.CounterVec
	// RetentionRuns counts retention runs, by result (done, skipped: another
	// replica held the lock, failed).
	RetentionRuns *prometheus.CounterVec
}

// New registers the collectors on reg (nil: not registered).
func New(reg prometheus.Registerer) *Metrics {
	const ns, sub = "serbero", "intakesvc"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, labels)
	}
	m := &Metrics{
		EventsReceived:        counter("events_received_total", "Dispute events received from relaygw (nostr event received)."),
		EventsRejected:        counterVec("events_rejected_total", "Dispute events rejected, by reason (forged_author, bad_signature, bad_id, wrong_kind, missing_d, missing_s).", "reason"),
		Detected:              counterVec("disputes_detected_total", "Disputes recorded for the first time (detected new dispute), by the status they were first seen with.", "status"),
		DuplicateSkips:        counter("duplicate_skips_total", "Events for disputes already recorded (duplicate_skip)."),
		StaleRevisions:        counter("stale_revisions_total", "Revisions older than the newest applied one, ignored."),
		UnknownStatuses:       counter("unknown_statuses_total", "Events with an unrecognised s value (state kept)."),
		PersistenceFailures:   counter("persistence_failures_total", "Attempts to persist an event that failed (persistence_failed); the event is retried."),
		IllegalTransitions:    counter("illegal_transitions_total", "Lifecycle transitions refused as illegal."),
		NotificationsSent:     counterVec("notifications_sent_total", "DMs delivered to a solver (notification_sent, renotification_sent, assignment_notification_sent), by notif_type.", "notif_type"),
		NotificationsFailed:   counterVec("notifications_failed_total", "DMs that failed (notification_failed, renotification_failed, assignment_notification_failed), by notif_type.", "notif_type"),
		NotificationsSkipped:  counterVec("notifications_skipped_total", "Queued DMs dropped because the dispute moved on before they were sent, by notif_type.", "notif_type"),
		Transitions:           counterVec("state_transitions_total", "Lifecycle transitions (state_transition), by from and to state.", "from", "to"),
		Assignments:           counter("assignments_detected_total", "Disputes observed taken (assignment_detected)."),
		ResolvedExternally:    counter("disputes_resolved_externally_total", "Disputes Mostro reported resolved (dispute_resolved_externally)."),
		RenotificationTicks:   counter("renotification_ticks_total", "Re-notification timer ticks (renotification_tick)."),
		RenotificationBatches: counterVec("notification_batches_claimed_total", "Notification batches claimed by the timer, by notif_type (re-notification, or initial for a retry).", "notif_type"),
		Disputes: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "disputes",
			Help: "Disputes per lifecycle state (whole database)."}, []string{"state"}),
		Cursor: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "intake_cursor",
			Help: "Last relaygw dispute-event cursor this replica persisted."}),
		DetectToSent: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Subsystem: sub,
			Name: "dm_latency_seconds", Help: "Time from queuing a DM (in the transaction that decided it) to relaygw's answer, per attempt.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}}),
		Quarantined: counterVec("events_quarantined_total",
			"Dispute events that can never be applied, set aside in intake_quarantine so the stream moves on, by class.", "class"),
		Backfilled: counterVec("backfill_events_total",
			"Dispute events from relaygw's first-start backfill window, by outcome (notified: still initiated; silent: recorded without DMs).", "outcome"),
		RetentionDeleted: counterVec("retention_rows_deleted_total",
			"Rows removed by the retention job, by table.", "table"),
		RetentionRuns: counterVec("retention_runs_total",
			"Retention runs, by result (done, skipped: another replica was running it, failed).", "result"),
	}
	for _, st := range lifecycle.States {
		m.Disputes.WithLabelValues(string(st))
	}
	if reg != nil {
		reg.MustRegister(m.EventsReceived, m.EventsRejected, m.Detected, m.DuplicateSkips, m.StaleRevisions,
			m.UnknownStatuses, m.PersistenceFailures, m.IllegalTransitions, m.NotificationsSent, m.NotificationsFailed,
			m.NotificationsSkipped, m.Transitions, m.Assignments, m.ResolvedExternally,
			m.RenotificationTicks, m.RenotificationBatches, m.Disputes, m.Cursor, m.DetectToSent,
			m.Quarantined, m.Backfilled, m.RetentionDeleted, m.RetentionRuns)
	}
	return m
}

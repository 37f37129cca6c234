package pgdb

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// poolCollector exports pgxpool.Stat() as serbero_db_pool_* metrics.
type poolCollector struct {
	pool *pgxpool.Pool

	acquired, idle, total, maxConns                              *prometheus.Desc
	acquireCount, acquireDuration, emptyAcquire, canceledAcquire *prometheus.Desc
}

// NewPoolCollector returns a collector over pool's statistics, labelled
// service=<service> so several pools in one process do not collide.
func NewPoolCollector(pool *pgxpool.Pool, service string) prometheus.Collector {
	l := prometheus.Labels{"service": service}
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("serbero_db_pool_"+name, help, nil, l)
	}
	return &poolCollector{
		pool:            pool,
		acquired:        d("acquired_conns", "Connections currently acquired from the pool."),
		idle:            d("idle_conns", "Idle connections in the pool."),
		total:           d("total_conns", "Total connections in the pool."),
		maxConns:        d("max_conns", "Maximum size of the pool."),
		acquireCount:    d("acquire_total", "Successful acquires from the pool."),
		acquireDuration: d("acquire_duration_seconds_total", "Total time spent in successful acquires."),
		emptyAcquire:    d("empty_acquire_total", "Successful acquires that had to wait for a connection."),
		canceledAcquire: d("canceled_acquire_total", "Acquires cancelled by their context."),
	}
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acquired, c.idle, c.total, c.maxConns, c.acquireCount, c.acquireDuration, c.emptyAcquire, c.canceledAcquire} {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.pool.Stat()
	g, cnt := prometheus.GaugeValue, prometheus.CounterValue
	ch <- prometheus.MustNewConstMetric(c.acquired, g, float64(s.AcquiredConns()))
	ch <- prometheus.MustNewConstMetric(c.idle, g, float64(s.IdleConns()))
	ch <- prometheus.MustNewConstMetric(c.total, g, float64(s.TotalConns()))
	ch <- prometheus.MustNewConstMetric(c.maxConns, g, float64(s.MaxConns()))
	ch <- prometheus.MustNewConstMetric(c.acquireCount, cnt, float64(s.AcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.acquireDuration, cnt, s.AcquireDuration().Seconds())
	ch <- prometheus.MustNewConstMetric(c.emptyAcquire, cnt, float64(s.EmptyAcquireCount()))
	ch <- prometheus.MustNewConstMetric(c.canceledAcquire, cnt, float64(s.CanceledAcquireCount()))
}

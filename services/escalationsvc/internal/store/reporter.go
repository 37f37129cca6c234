package store

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/serbero/serbero/pkg/handoff"
)

// ReporterApplicationName is the application_name of the reporter's
// connection (to find it in pg_stat_activity).
const ReporterApplicationName = "serbero-escalationsvc-metrics"

// reporterLockKey names the session advisory lock the queue-metrics
// reporter holds, in the namespace convention of Serbero's advisory locks.
const reporterLockKey = "escalationsvc/queue-metrics-reporter"

// connectTimeout bounds the reporter's connection attempt.
const connectTimeout = 2 * time.Second

// Reporter elects one replica of the database to report the queue's global
// numbers (docs/escalation.md#metrics): the one whose dedicated connection
// holds a session advisory lock. Postgres lets one session hold it at a
// time and releases it when that session ends, so a dead reporter's role
// passes to the next replica that asks. It is safe for concurrent use.
type Reporter struct {
	cfg *pgx.ConnConfig

	mu     sync.Mutex
	conn   *pgx.Conn
	holder bool
	closed bool
}

// NewReporter returns a Reporter that connects with cfg (copied) when first
// asked.
func NewReporter(cfg *pgx.ConnConfig) *Reporter {
	c := cfg.Copy()
	if c.RuntimeParams == nil {
		c.RuntimeParams = map[string]string{}
	}
	c.RuntimeParams["application_name"] = ReporterApplicationName
	return &Reporter{cfg: c}
}

// Stats returns the queue's numbers when this replica is the reporter
// (taking the role if nobody holds it) and reporter = false otherwise. The
// numbers are read on the lock-holding connection itself: a successful read
// proves the session, hence the lock, is still this replica's, so two
// replicas never report at once. An error (database unreachable, the
// connection lost) drops the role and the connection; the next call tries
// again.
func (r *Reporter) Stats(ctx context.Context) (st handoff.Stats, reporter bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return handoff.Stats{}, false, nil // stopping: another replica takes the role
	}
	if err := r.ensure(ctx); err != nil {
		return handoff.Stats{}, false, err
	}
	if !r.holder {
		if err := r.conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, reporterLockKey).Scan(&r.holder); err != nil {
			r.drop()
			return handoff.Stats{}, false, fmt.Errorf("queue metrics reporter: try lock: %w", err)
		}
		if !r.holder {
			return handoff.Stats{}, false, nil
		}
	}
	st, err = handoff.QueueStats(ctx, r.conn)
	if err != nil {
		r.drop()
		return handoff.Stats{}, false, fmt.Errorf("queue metrics reporter: %w", err)
	}
	return st, true, nil
}

func (r *Reporter) ensure(ctx context.Context) error {
	if r.conn != nil && !r.conn.IsClosed() {
		return nil
	}
	r.drop()
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, r.cfg)
	if err != nil {
		return fmt.Errorf("queue metrics reporter: connect: %w", err)
	}
	r.conn = conn
	return nil
}

// drop closes the connection (releasing the lock if it held it).
func (r *Reporter) drop() {
	r.holder = false
	if r.conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = r.conn.Close(ctx)
	r.conn = nil
}

// Close gives the role up and closes the connection; Stats reports this
// replica as not the reporter after it.
func (r *Reporter) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	r.drop()
}

// Package pgdb opens Serbero's Postgres pool, applies the embedded
// migrations (only when asked: `serbero migrate up`), and answers the
// readiness question "is the database reachable and at the schema version
// this binary expects?".
package pgdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/serbero/serbero/pkg/schema"
)

// VersionTable is the table goose records applied migrations in.
const VersionTable = "serbero_schema_migrations"

// ErrNoURL is returned when no database URL is configured.
var ErrNoURL = errors.New("[database].url is not set (set it in the config file, SERBERO_DATABASE_URL or SERBERO_DATABASE_URL_FILE)")

// Open returns a pool for url with at most maxConns connections. It does not
// wait for the database: use Ping or the readiness check.
func Open(ctx context.Context, url string, maxConns int64) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, ErrNoURL
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parse error may echo the URL, password included.
		return nil, errors.New("parse database url: invalid connection string")
	}
	if maxConns > 0 {
		cfg.MaxConns = int32(min(maxConns, 1<<15))
	}
	cfg.HealthCheckPeriod = 10 * time.Second
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "serbero"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	return pool, nil
}

// provider builds a goose provider over the pool. The session locker takes
// a Postgres advisory lock, so concurrent `migrate up` runs (several
// replicas, several Jobs) apply each migration exactly once.
func provider(pool *pgxpool.Pool, log *slog.Logger) (*goose.Provider, *sql.DB, error) {
	db := stdlib.OpenDBFromPool(pool)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockTimeout(1, 600)) // retry every 1 s for up to 10 min
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migration lock: %w", err)
	}
	opts := []goose.ProviderOption{
		goose.WithTableName(VersionTable),
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	}
	if log != nil {
		opts = append(opts, goose.WithSlog(log))
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, schema.Migrations(), opts...)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("migration provider: %w", err)
	}
	return p, db, nil
}

// MigrationResult is one applied migration.
type MigrationResult struct {
	Duration time.Duration
	Name     string
	Version  int64
}

// MigrateUp applies every pending migration and returns what it applied
// (nothing when the database is already current).
func MigrateUp(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) ([]MigrationResult, error) {
	p, db, err := provider(pool, log)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	results, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate up: %w", err)
	}
	out := make([]MigrationResult, 0, len(results))
	for _, r := range results {
		out = append(out, MigrationResult{Version: r.Source.Version, Name: r.Source.Path, Duration: r.Duration})
	}
	return out, nil
}

// MigrationStatus is the state of one embedded migration.
type MigrationStatus struct {
	AppliedAt time.Time // zero when pending
	Name      string
	Version   int64
}

// Status lists every embedded migration and whether it is applied.
func Status(ctx context.Context, pool *pgxpool.Pool) ([]MigrationStatus, error) {
	p, db, err := provider(pool, nil)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("migration status: %w", err)
	}
	out := make([]MigrationStatus, 0, len(st))
	for _, s := range st {
		out = append(out, MigrationStatus{Version: s.Source.Version, Name: s.Source.Path, AppliedAt: s.AppliedAt})
	}
	return out, nil
}

// CurrentVersion returns the highest applied migration version (0 when the
// database has never been migrated).
func CurrentVersion(ctx context.Context, pool *pgxpool.Pool) (int64, error) {
	var exists bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, VersionTable).Scan(&exists); err != nil {
		return 0, fmt.Errorf("query schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int64
	err := pool.QueryRow(ctx, `SELECT COALESCE(MAX(version_id), 0) FROM `+VersionTable+` WHERE is_applied`).Scan(&v)
	if err != nil {
		return 0, fmt.Errorf("query schema version: %w", err)
	}
	return v, nil
}

// ErrSchemaBehind means the database has not been migrated to the version
// this binary expects.
var ErrSchemaBehind = errors.New("database schema is behind this binary: run `serbero migrate up`")

// ReadyCheck returns a readiness check: the database answers, and its schema
// is at least the embedded version.
func ReadyCheck(pool *pgxpool.Pool) func(context.Context) error {
	want := schema.Version()
	return func(ctx context.Context) error {
		got, err := CurrentVersion(ctx, pool)
		if err != nil {
			return fmt.Errorf("database unreachable: %w", err)
		}
		if got < want {
			return fmt.Errorf("%w (database at %d, binary expects %d)", ErrSchemaBehind, got, want)
		}
		return nil
	}
}

// Package pgdbtest gives each test its own fresh Postgres database on the
// real server, cloned from a template migrated once per migration set, so
// tests run in parallel and never see each other's rows. Test-only.
//
// The server is TEST_DATABASE_URL (an admin connection, default
// postgres://postgres@127.0.0.1:5432/postgres). When it is unreachable the
// test fails, locally as in CI, with a message that says how to fix it: a
// database test never skips. `make test` finds or starts a server and sets
// TEST_DATABASE_URL (scripts/postgres.sh).
package pgdbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/schema"
)

// DefaultAdminURL is used when TEST_DATABASE_URL is unset.
const DefaultAdminURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// DB is one test's database.
type DB struct {
	// Name is the database name.
	Name string
	// Pool is a pool on it, closed at test cleanup.
	Pool *pgxpool.Pool
	// URL connects to it (for extra pools, e.g. simulated replicas).
	URL string
}

// AdminURL returns the admin connection string.
func AdminURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultAdminURL
}

// unavailable fails the test, saying how to fix it. It never skips: a
// test that needs Postgres and did not run must not look like a pass.
func unavailable(t testing.TB, err error) {
	t.Helper()
	t.Fatalf("%s", UnavailableMessage(AdminURL(), err))
}

// UnavailableMessage is the failure of a database test when the server at
// adminURL cannot be used.
func UnavailableMessage(adminURL string, err error) string {
	return fmt.Sprintf("pgdbtest: no usable Postgres at TEST_DATABASE_URL=%s: %v\n"+
		"  fix: run the tests with `make test`, which finds or starts Postgres (127.0.0.1:5432 if it answers, else a private cluster under .data/pg) and sets TEST_DATABASE_URL;\n"+
		"  or start Postgres yourself and export TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable (an admin connection that may create databases)",
		redact(adminURL), err)
}

var (
	templateOnce sync.Once
	templateName string
	templateErr  error
)

// NewDB returns a fresh, fully migrated database, dropped at cleanup.
func NewDB(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	templateOnce.Do(func() { templateName, templateErr = ensureTemplate(ctx) })
	if templateErr != nil {
		unavailable(t, templateErr)
	}
	return create(t, ctx, templateName)
}

// NewEmptyDB returns a fresh database with no migrations applied.
func NewEmptyDB(t testing.TB) *DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return create(t, ctx, "template0")
}

// OpenPool opens another pool on db (closed at cleanup), as a second
// process would.
func (db *DB) OpenPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), db.URL)
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func create(t testing.TB, ctx context.Context, template string) *DB {
	t.Helper()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		unavailable(t, err)
	}
	defer admin.Close(context.Background())

	name := "serbero_test_" + randomHex(8)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()+" TEMPLATE "+pgx.Identifier{template}.Sanitize()); err != nil {
		t.Fatalf("create test database from %s: %v", template, err)
	}
	dbURL, err := withDatabase(AdminURL(), name)
	if err != nil {
		t.Fatalf("test database url: %v", err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatalf("open test database: %v", err)
	}
	t.Cleanup(func() {
		pool.Close()
		dropCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(dropCtx, AdminURL())
		if err != nil {
			t.Logf("drop test database %s: %v", name, err)
			return
		}
		defer conn.Close(dropCtx)
		if _, err := conn.Exec(dropCtx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
	})
	return &DB{Name: name, Pool: pool, URL: dbURL}
}

// ensureTemplate creates, once per migration fingerprint and across
// concurrent test processes, a migrated template database.
func ensureTemplate(ctx context.Context) (string, error) {
	name := "serbero_tmpl_" + schema.Fingerprint()[:16]
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", err
	}
	defer admin.Close(context.Background())

	// Serialise template creation across test binaries running in parallel.
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock(hashtext('serbero_test_template'))"); err != nil {
		return "", fmt.Errorf("lock template: %w", err)
	}
	defer admin.Exec(context.Background(), "SELECT pg_advisory_unlock(hashtext('serbero_test_template'))") //nolint:errcheck // the lock also ends with the connection

	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return "", fmt.Errorf("look up template: %w", err)
	}
	if exists {
		return name, nil
	}
	// Build under a temporary name and rename when complete, so a process
	// killed half-way never leaves a broken template behind.
	building := name + "_b" + randomHex(4)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{building}.Sanitize()); err != nil {
		return "", fmt.Errorf("create template: %w", err)
	}
	buildURL, err := withDatabase(AdminURL(), building)
	if err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, buildURL)
	if err != nil {
		return "", fmt.Errorf("open template: %w", err)
	}
	_, migErr := pgdb.MigrateUp(ctx, pool, nil)
	pool.Close()
	if migErr != nil {
		return "", fmt.Errorf("migrate template: %w", migErr)
	}
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+pgx.Identifier{building}.Sanitize()+" RENAME TO "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("rename template: %w", err)
	}
	return name, nil
}

func withDatabase(rawURL, name string) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Scheme == "" {
		return "", errors.New("TEST_DATABASE_URL must be a postgres:// URL")
	}
	u.Path = "/" + name
	return u.String(), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparseable)"
	}
	return u.Redacted()
}

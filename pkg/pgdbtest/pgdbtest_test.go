package pgdbtest_test

import (
	"net"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdbtest"
)

// TestNewDBOnADeadServerFails runs TestDeadServerHelper in a child process
// against a closed port: the child must fail (not skip), saying how to fix
// it, whether or not CI is set.
func TestNewDBOnADeadServerFails(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := "postgres://postgres@" + l.Addr().String() + "/postgres?sslmode=disable"
	require.NoError(t, l.Close())

	for _, ci := range []string{"", "true"} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestDeadServerHelper$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), "PGDBTEST_HELPER=1", "TEST_DATABASE_URL="+dead, "CI="+ci)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "CI=%q: a missing database must fail the test; output:\n%s", ci, out)
		require.Contains(t, string(out), "--- FAIL: TestDeadServerHelper")
		require.NotContains(t, string(out), "--- SKIP")
		require.Contains(t, string(out), "pgdbtest: no usable Postgres at TEST_DATABASE_URL="+dead)
		require.Contains(t, string(out), "fix: run the tests with `make test`")
	}
}

// TestDeadServerHelper is the child of TestNewDBOnADeadServerFails.
func TestDeadServerHelper(t *testing.T) {
	if os.Getenv("PGDBTEST_HELPER") != "1" {
		return // only meaningful as the child process
	}
	pgdbtest.NewDB(t)
	t.Log("NewDB returned on a dead server")
}

func TestUnavailableMessageHidesThePassword(t *testing.T) {
	t.Parallel()
	msg := pgdbtest.UnavailableMessage("postgres://u:hunter2@h:1/postgres", os.ErrNotExist)
	require.NotContains(t, msg, "hunter2")
	require.Contains(t, msg, "TEST_DATABASE_URL=postgres://u:xxxxx@h:1/postgres")
}

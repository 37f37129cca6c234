package pgdb_test

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/pgdbtest"
)

func TestPoolCollectorReportsAcquiredConnection(t *testing.T) {
	t.Parallel()
	db := pgdbtest.NewDB(t)
	reg := prometheus.NewRegistry()
	require.NoError(t, reg.Register(pgdb.NewPoolCollector(db.Pool, "intakesvc")))

	conn, err := db.Pool.Acquire(t.Context())
	require.NoError(t, err)
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP serbero_db_pool_acquired_conns Connections currently acquired from the pool.
# TYPE serbero_db_pool_acquired_conns gauge
serbero_db_pool_acquired_conns{service="intakesvc"} 1
`), "serbero_db_pool_acquired_conns"))
	conn.Release()
	require.NoError(t, testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP serbero_db_pool_acquired_conns Connections currently acquired from the pool.
# TYPE serbero_db_pool_acquired_conns gauge
serbero_db_pool_acquired_conns{service="intakesvc"} 0
`), "serbero_db_pool_acquired_conns"))
	n, err := testutil.GatherAndCount(reg, "serbero_db_pool_acquire_total")
	require.NoError(t, err)
	require.Equal(t, 1, n)
}

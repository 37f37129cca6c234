package logtest_test

import (
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging/logtest"
)

func TestBufferIsSafeForConcurrentLoggers(t *testing.T) {
	t.Parallel()
	log, buf := logtest.New()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				log.Info("line", "writer", i, "n", j)
			}
		})
	}
	wg.Wait()
	require.Len(t, buf.Lines(), 400)
	require.Len(t, buf.Find("line"), 400, "every line is one whole JSON record")
}

func TestRecordsAndLevels(t *testing.T) {
	t.Parallel()
	log, buf := logtest.NewLevel(slog.LevelInfo)
	log.Debug("hidden")
	log.Warn("shown", "dispute_id", "d1", "error", "boom")
	_, _ = buf.Write([]byte("not json\n"))
	_, _ = buf.Write([]byte(`{"msg":"partial`)) // no newline yet

	recs := buf.Records()
	require.Len(t, recs, 1)
	require.Equal(t, "shown", recs[0].Msg())
	require.Equal(t, "WARN", recs[0].Level())
	require.Equal(t, "d1", recs[0].Str("dispute_id"))
	require.Equal(t, "boom", recs[0].Str("error"))
	require.Empty(t, recs[0].Str("missing"))
	require.Len(t, buf.Lines(), 2, "the partial line is not a line yet")
	require.True(t, buf.Contains("partial"))
	require.False(t, buf.Contains("hidden"))
	require.Empty(t, buf.Find("hidden"))
}

package gctune_test

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/serbero/serbero/pkg/gctune"
)

// Tune changes process-wide runtime settings, so this test is not
// parallel and restores them.
func TestTune(t *testing.T) {
	gc := debug.SetGCPercent(100)
	mem := debug.SetMemoryLimit(-1)
	t.Cleanup(func() {
		debug.SetGCPercent(gc)
		debug.SetMemoryLimit(mem)
	})
	tests := []struct {
		name      string
		env       map[string]string
		wantGC    int
		wantLimit int64 // returned and applied; 0: left at math.MaxInt64
	}{
		{name: "defaults", env: map[string]string{}, wantGC: gctune.GCPercent},
		{name: "container limit", env: map[string]string{gctune.MemoryLimitEnv: "536870912"},
			wantGC: gctune.GCPercent, wantLimit: 483183820},
		{name: "operator GOGC and GOMEMLIMIT win", env: map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB",
			gctune.MemoryLimitEnv: "536870912"}, wantGC: 100},
		{name: "unparsable limit is ignored", env: map[string]string{gctune.MemoryLimitEnv: "512Mi"},
			wantGC: gctune.GCPercent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			got := gctune.Tune(func(k string) string { return tt.env[k] })
			if got != tt.wantLimit {
				t.Errorf("Tune returned %d, want %d", got, tt.wantLimit)
			}
			if gc := debug.SetGCPercent(100); gc != tt.wantGC {
				t.Errorf("GC percent %d, want %d", gc, tt.wantGC)
			}
			want := tt.wantLimit
			if want == 0 {
				want = math.MaxInt64
			}
			if lim := debug.SetMemoryLimit(-1); lim != want {
				t.Errorf("memory limit %d, want %d", lim, want)
			}
		})
	}
}

func TestEffective(t *testing.T) {
	t.Parallel()
	if got := gctune.Effective(func(string) string { return "" }); got != "400" {
		t.Errorf("Effective without GOGC = %q, want 400", got)
	}
	if got := gctune.Effective(func(k string) string { return map[string]string{"GOGC": "150"}[k] }); got != "150" {
		t.Errorf("Effective with GOGC=150 = %q", got)
	}
}

// Package gctune sets the Go garbage collector for a `serbero serve`
// process: a higher GC target than Go's default, bounded by a soft memory
// limit derived from the container's limit. The operator's GOGC and
// GOMEMLIMIT always win.
package gctune

import (
	"runtime/debug"
	"strconv"
	"strings"
)

// GCPercent is the garbage-collection target `serbero serve` runs with
// unless GOGC is set: 400 instead of Go's 100. Serbero's services keep small
// heaps but allocate steadily on their RPC paths (a CurrentState call is
// ~11 KB between client and server), so at Go's default they collect tens of
// times per second and the pauses show in tail latency. Pair it with a
// memory limit (see MemoryLimitEnv) so the larger target never pushes the
// process past its container's limit.
const GCPercent = 400

// MemoryLimitEnv names the variable holding the container's memory limit in
// bytes (the Helm chart fills it from limits.memory). Unless GOMEMLIMIT is
// set, Tune sets Go's soft memory limit to MemoryLimitShare of it, leaving
// room for memory the Go heap does not account for (stacks, cgo, the
// runtime's own structures) so the GC works harder before the kernel kills
// the pod.
const MemoryLimitEnv = "SERBERO_MEMORY_LIMIT"

// MemoryLimitShare is the share of MemoryLimitEnv used as the soft limit.
const MemoryLimitShare = 0.9

// Tune applies GCPercent unless the operator set GOGC, and the soft memory
// limit derived from MemoryLimitEnv unless GOMEMLIMIT is set. It returns
// the soft limit it set (0: none).
func Tune(getenv func(string) string) (memoryLimit int64) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
	if getenv("GOMEMLIMIT") != "" {
		return 0
	}
	limit, err := strconv.ParseInt(strings.TrimSpace(getenv(MemoryLimitEnv)), 10, 64)
	if err != nil || limit <= 0 {
		return 0
	}
	soft := int64(float64(limit) * MemoryLimitShare)
	debug.SetMemoryLimit(soft)
	return soft
}

// Effective returns the GC target in effect after Tune, for start-up logs:
// GOGC as the operator set it, else GCPercent.
func Effective(getenv func(string) string) string {
	if v := getenv("GOGC"); v != "" {
		return v
	}
	return strconv.Itoa(GCPercent)
}

// Package service is the contract between a Serbero service and the
// process that runs it (`serbero serve`).
//
// Shutdown order, driven by the runner: SIGTERM -> health NOT_SERVING ->
// drain period (RPCs still served, background work still running) ->
// Stopping is cancelled (Run returns, stream handlers end so clients move
// on) -> gRPC graceful stop within the grace period -> database pool closed.
package service

import (
	"context"
	"runtime/debug"
	"strconv"
	"strings"

	"google.golang.org/grpc"
)

// Service is one Serbero service.
type Service interface {
	// Register registers the service's gRPC handlers.
	Register(s *grpc.Server)
	// Run does the service's background work until ctx is cancelled (which
	// happens after the drain period) and returns nil on a clean stop. It
	// is called only once the process is ready (database reachable, schema
	// current).
	Run(ctx context.Context) error
}

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
// set, TuneGC sets Go's soft memory limit to MemoryLimitShare of it, leaving
// room for memory the Go heap does not account for (stacks, cgo, the
// runtime's own structures) so the GC works harder before the kernel kills
// the pod.
const MemoryLimitEnv = "SERBERO_MEMORY_LIMIT"

// MemoryLimitShare is the share of MemoryLimitEnv used as the soft limit.
const MemoryLimitShare = 0.9

// TuneGC applies GCPercent unless the operator set GOGC, and the soft
// memory limit derived from MemoryLimitEnv unless GOMEMLIMIT is set. It
// returns the soft limit it set (0: none).
func TuneGC(getenv func(string) string) (memoryLimit int64) {
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

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
// times per second and the pauses show in tail latency. Pair it with
// GOMEMLIMIT (the Helm chart sets it from the container's memory limit) so
// the larger target never pushes the process past its limit.
const GCPercent = 400

// TuneGC applies GCPercent unless the operator set GOGC.
func TuneGC(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(GCPercent)
	}
}

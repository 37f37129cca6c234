// Package service is the contract between a Serbero service and the
// process that runs it (`serbero serve`, see internal/runner).
//
// The runner builds every service of its target with New, registers their
// handlers on one gRPC server, and calls Run once the process is ready.
// Shutdown order (owned by the runner, described in docs/architecture.md):
// SIGTERM -> health NOT_SERVING -> drain period (RPCs still served,
// background work still running) -> every open stream's context is
// cancelled by the gRPC server and Run's context is cancelled (Run returns)
// -> gRPC graceful stop within the grace period -> resources closed in
// reverse order of creation.
package service

import (
	"context"

	"google.golang.org/grpc"
)

// Service is one Serbero service.
type Service interface {
	// Register registers the service's gRPC handlers.
	Register(s *grpc.Server)
	// Run does the service's background work until ctx is cancelled (which
	// happens after the drain period) and returns nil on a clean stop. It
	// is called only once the process is ready (database reachable, schema
	// current). A non-nil error stops the whole process.
	Run(ctx context.Context) error
}

package grpcserver

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/serbero/serbero/pkg/apperr"
)

// errShuttingDown is what a client sees when shutdown ended its stream: a
// retryable UNAVAILABLE (reconnect, with the last cursor, to any replica).
var errShuttingDown = apperr.Unavailable("server is shutting down; reconnect")

// streamShutdown is the innermost stream interceptor: the handler's
// stream.Context() ends when the call ends or when shutdown ends the
// streams, whichever comes first. A handler that returns because of the
// latter (with the context's error, or a Canceled status) ends the call
// with UNAVAILABLE; one that returns nil ends it cleanly.
func (s *Server) streamShutdown(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	stop := context.AfterFunc(s.streams, cancel)
	defer stop()
	err := handler(srv, &stoppingStream{ServerStream: ss, ctx: ctx})
	if err != nil && s.streams.Err() != nil && ss.Context().Err() == nil && isCanceled(err) {
		return errShuttingDown
	}
	return err
}

func isCanceled(err error) bool {
	if errors.Is(err, context.Canceled) {
		return true
	}
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.Canceled
}

// stoppingStream is a server stream with the shutdown-aware context.
type stoppingStream struct {
	grpc.ServerStream
	ctx context.Context
}

// Context returns the stream's context, also cancelled at shutdown.
func (s *stoppingStream) Context() context.Context { return s.ctx }

package grpcserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"runtime"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/serbero/serbero/pkg/apperr"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of every reason a Serbero
// service returns.
const ErrorDomain = "serbero"

// errInternal is the only thing a client learns about an unexpected failure.
var errInternal = status.Error(codes.Internal, "internal error")

// kindCodes maps apperr kinds to status codes: the single place where
// domain errors become gRPC codes.
var kindCodes = map[apperr.Kind]codes.Code{
	apperr.KindInvalidArgument:    codes.InvalidArgument,
	apperr.KindNotFound:           codes.NotFound,
	apperr.KindAlreadyExists:      codes.AlreadyExists,
	apperr.KindFailedPrecondition: codes.FailedPrecondition,
	apperr.KindUnavailable:        codes.Unavailable,
	apperr.KindDeadlineExceeded:   codes.DeadlineExceeded,
	apperr.KindPermissionDenied:   codes.PermissionDenied,
	apperr.KindResourceExhausted:  codes.ResourceExhausted,
	apperr.KindAborted:            codes.Aborted,
}

// ToStatus converts a handler error into the error the client sees. Errors
// that already carry a status pass through; apperr errors keep their public
// message; context errors keep their meaning; everything else is logged
// here and becomes a generic Internal.
func (s *Server) toStatus(ctx context.Context, method string, err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		if code, ok := kindCodes[ae.Kind]; ok {
			return withReason(status.New(code, ae.Msg), ae.Reason)
		}
		s.log.ErrorContext(ctx, "internal error", "grpc.method", method, "error", err)
		return withReason(status.New(codes.Internal, "internal error"), ae.Reason)
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "canceled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	s.log.ErrorContext(ctx, "internal error", "grpc.method", method, "error", err)
	return errInternal
}

// withReason attaches reason as a google.rpc.ErrorInfo detail.
func withReason(st *status.Status, reason string) error {
	if reason == "" {
		return st.Err()
	}
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: ErrorDomain}); err == nil {
		return d.Err()
	}
	return st.Err()
}

func (s *Server) unaryErrorBoundary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	if err != nil {
		return nil, s.toStatus(ctx, info.FullMethod, err)
	}
	return resp, nil
}

func (s *Server) streamErrorBoundary(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return s.toStatus(ss.Context(), info.FullMethod, handler(srv, ss))
}

// tokenAuth checks "authorization: bearer <token>" in constant time.
func tokenAuth(token string) auth.AuthFunc {
	want := []byte(token)
	return func(ctx context.Context) (context.Context, error) {
		got, err := auth.AuthFromMD(ctx, "bearer")
		if err != nil {
			return nil, err // already Unauthenticated
		}
		if subtle.ConstantTimeCompare([]byte(got), want) != 1 {
			return nil, status.Error(codes.Unauthenticated, "invalid service token")
		}
		return ctx, nil
	}
}

func stack() []byte {
	buf := make([]byte, 64<<10)
	return buf[:runtime.Stack(buf, false)]
}

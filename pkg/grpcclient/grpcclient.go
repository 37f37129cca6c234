// Package grpcclient dials other Serbero services: one long-lived
// connection per peer, the shared service token on every call, and retries
// of calls that fail with UNAVAILABLE (a peer restarting or not up yet).
package grpcclient

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
)

// Reason returns the machine-readable reason a Serbero service attached to
// err (the google.rpc.ErrorInfo detail set from apperr.Error.Reason), or ""
// when there is none. Callers switch on it, never on the message text.
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// serviceConfig retries UNAVAILABLE with backoff and waits for the
// connection to become ready instead of failing fast, so services can start
// in any order. Streams are retried only until their first response.
const serviceConfig = `{
  "methodConfig": [{
    "name": [{}],
    "waitForReady": true,
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.1s",
      "maxBackoff": "2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// Options configures Dial.
type Options struct {
	// Token is the shared service-to-service token sent as a bearer token.
	Token string
	// Extra dial options, for tests (e.g. a bufconn dialer).
	Extra []grpc.DialOption
}

// Dial returns a client connection to target ("host:port"). The connection
// is lazy: Dial does not wait for the peer.
func Dial(target string, opts Options) (*grpc.ClientConn, error) {
	dialOpts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second, PermitWithoutStream: true}),
	}
	if opts.Token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer(opts.Token)))
	}
	dialOpts = append(dialOpts, opts.Extra...)
	conn, err := grpc.NewClient(target, dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", target, err)
	}
	return conn, nil
}

// bearer sends the token on every call. Service traffic stays inside the
// cluster network (NetworkPolicies in the chart); mTLS is not built in.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (bearer) RequireTransportSecurity() bool { return false }

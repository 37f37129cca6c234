package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

const healthUsage = `usage: serbero health [--timeout DURATION] HOST:PORT[=SERVICE]...

Asks each address's grpc.health.v1 service for SERVICE's status (empty: the
overall status "") and prints one line per check. Exits non-zero unless every
check is SERVING. The Helm chart's test hook runs it against every component
(helm test); it needs no token.`

// healthCommand checks the gRPC health of one or more services.
func healthCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	timeout := fs.Duration("timeout", 5*time.Second, "deadline of each check")
	fs.Usage = func() { fmt.Fprintln(fs.Output(), healthUsage) }
	if err := parseFlagsAndArgs(fs, args, io.Stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(io.Stderr, healthUsage)
		return &usageError{msg: "no address given"}
	}
	var failed []string
	for _, arg := range fs.Args() {
		addr, service, _ := strings.Cut(arg, "=")
		if addr == "" {
			return &usageError{msg: fmt.Sprintf("bad check %q: want HOST:PORT[=SERVICE]", arg)}
		}
		status, err := checkHealth(ctx, addr, service, *timeout)
		name := service
		if name == "" {
			name = `""`
		}
		if err != nil {
			fmt.Fprintf(io.Stdout, "%s %s: %v\n", addr, name, err)
			failed = append(failed, arg)
			continue
		}
		fmt.Fprintf(io.Stdout, "%s %s: %s\n", addr, name, status)
		if status != healthpb.HealthCheckResponse_SERVING {
			failed = append(failed, arg)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("not serving: %s", strings.Join(failed, ", "))
	}
	return nil
}

func checkHealth(ctx context.Context, addr, service string, timeout time.Duration) (healthpb.HealthCheckResponse_ServingStatus, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return 0, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return 0, fmt.Errorf("no answer within %s: %w", timeout, err)
		}
		return 0, fmt.Errorf("check: %w", err)
	}
	return resp.GetStatus(), nil
}

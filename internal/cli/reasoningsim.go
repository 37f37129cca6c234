package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/serbero/serbero/pkg/testkit/reasoningsim"
)

// reasoningSimCommand runs the scripted OpenAI-compatible simulator (a
// development stand-in, not a model) until interrupted.
func reasoningSimCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("reasoning-sim", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:8089", "address to serve POST /v1/chat/completions on")
	scriptPath := fs.String("script", "", "JSON script file (default: ask each party, then summarize; see docs/mediation.md#simulator)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	var script reasoningsim.Script
	if *scriptPath != "" {
		s, err := reasoningsim.LoadScript(*scriptPath)
		if err != nil {
			return err
		}
		script = s
	}
	sim := reasoningsim.New(script)
	lis, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", *listen, err)
	}
	srv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	fmt.Fprintf(io.Stdout, "reasoning simulator (scripted, not a model) serving http://%s/v1/chat/completions\n", lis.Addr())
	fmt.Fprintf(io.Stdout, "point [reasoning] at it: provider = \"openai-compatible\", api_base = \"http://%s/v1\", any key\n", lis.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("reasoning simulator: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("reasoning simulator shutdown: %w", err)
	}
	return nil
}

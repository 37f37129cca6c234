package cli

import (
	"context"
	"encoding/json"
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
	scriptPath := fs.String("script", "", "JSON script file (default: ask both parties, ask again, then summarize; see docs/mediation.md#simulator)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	script := devReasoningScript
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
	srv := &http.Server{Handler: simHandler(sim), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	fmt.Fprintf(io.Stdout, "reasoning simulator (scripted, not a model) serving http://%s/v1/chat/completions\n", lis.Addr())
	fmt.Fprintf(io.Stdout, "script a dispute: PUT http://%s/dev/disputes/{id} with its replies (devtool open-dispute --outcome does)\n", lis.Addr())
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

// devReasoningScript is the simulator's script without --script: every
// dispute is asked a question per party at classification, asked again
// after the first answer, and summarized after the second (so in make dev
// the buyer's and the seller's answers lead to a summary for the solver).
var devReasoningScript = reasoningsim.Script{Default: reasoningsim.Replies{
	Classify:  []reasoningsim.Reply{{Kind: reasoningsim.KindAskClarification, Times: 2}, {Kind: reasoningsim.KindSummarize}},
	Summarize: []reasoningsim.Reply{{Kind: reasoningsim.KindSummary}},
}}

// simHandler serves the simulator plus its development control endpoint:
// PUT /dev/disputes/{id} with a JSON reasoningsim.Replies scripts one
// dispute (restarting its sequences).
func simHandler(sim *reasoningsim.Sim) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", sim.Handler())
	mux.HandleFunc("PUT /dev/disputes/{id}", func(w http.ResponseWriter, r *http.Request) {
		var replies reasoningsim.Replies
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&replies); err != nil {
			http.Error(w, "bad replies: "+err.Error(), http.StatusBadRequest)
			return
		}
		sim.ScriptDispute(r.PathValue("id"), replies)
		w.WriteHeader(http.StatusOK)
	})
	return mux
}

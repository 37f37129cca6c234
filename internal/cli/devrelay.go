package cli

import (
	"context"
	"flag"
	"fmt"
	"log/slog"

	"github.com/serbero/serbero/services/relaygw/devrelay"
)

// devRelayCommand runs the in-memory dev relay (the one `serve --dev`
// embeds) as a process of its own until interrupted: the system tests
// (systest/) run their relays this way, and it gives `make dev` users a
// relay that outlives a serbero restart.
func devRelayCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:7447", "address to listen on (port 0 picks a free one)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	r, err := devrelay.Start(*listen, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer r.Close()
	fmt.Fprintf(io.Stdout, "dev relay (in memory) listening on %s\n", r.URL())
	<-ctx.Done()
	return nil
}

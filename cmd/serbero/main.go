// Command serbero runs Serbero: `serbero serve --target=<service>|all`,
// `serbero migrate up|status`, `serbero version`. See README.md.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/serbero/serbero/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := cli.Run(ctx, os.Args[1:], cli.IO{Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, version)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, cli.ErrorText(err))
		os.Exit(cli.ExitCode(err))
	}
}

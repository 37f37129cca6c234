// Package cli implements the serbero command line: parsing flags, loading
// configuration and dispatching to serve, migrate and version.
package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/serbero/serbero/pkg/config"
)

// IO is the command's view of its process.
type IO struct {
	Getenv func(string) string
	Stderr io.Writer
	Stdout io.Writer
}

// usageError is a command-line mistake (exit code 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// helpShown is returned by parseFlags when -h or --help asked for a
// command's usage: Run prints it on stdout and succeeds.
type helpShown struct{ usage string }

func (e *helpShown) Error() string { return "help requested" }

// ExitCode maps an error from Run to the process exit code: 0 for none, 2
// for usage errors, 1 for everything else.
func ExitCode(err error) int {
	if err == nil {
		return 0
	}
	var ue *usageError
	if errors.As(err, &ue) {
		return 2
	}
	return 1
}

// ErrorText is how the command reports err on stderr: "serbero: <err>",
// except the reference daemon's start-up failures ("failed to load config
// from <path>: …", "invalid key: …"), which print exactly as it prints them
// (docs/config.md#errors).
func ErrorText(err error) string {
	var le *config.LoadError
	var ke *config.KeyError
	if errors.As(err, &le) || errors.As(err, &ke) {
		return err.Error()
	}
	return "serbero: " + err.Error()
}

const usage = `usage: serbero <command> [flags]

commands:
  serve     run one service (--target=relaygw|intakesvc|authsvc|mediationsvc|escalationsvc) or all of them
  migrate   apply (up) or list (status) the database migrations
  ctl       operator commands: disputes, sessions, handoffs, auth, relays (over gRPC; -o table|json|yaml)
  devtool   development helpers (init-config, publish-dispute, read-dms, ...)
  health    check services' gRPC health (HOST:PORT[=SERVICE]...; the chart's helm test)
  version   print the version

Run "serbero <command> -h" for the flags of a command.`

// Run runs the command line args (without the program name). -h or --help
// at any level prints that level's usage on stdout and succeeds; a mistake
// prints it on stderr and is a usage error (ExitCode 2).
func Run(ctx context.Context, args []string, io IO, version string) error {
	err := run(ctx, args, io, version)
	var help *helpShown
	if errors.As(err, &help) {
		_, err = fmt.Fprint(io.Stdout, help.usage)
		return err
	}
	return err
}

func run(ctx context.Context, args []string, io IO, version string) error {
	if len(args) == 0 {
		fmt.Fprintln(io.Stderr, usage)
		return &usageError{msg: "no command given"}
	}
	switch args[0] {
	case "serve":
		return serveCommand(ctx, args[1:], io, version)
	case "migrate":
		return migrateCommand(ctx, args[1:], io)
	case "ctl":
		return ctlCommand(ctx, args[1:], io)
	case "devtool":
		return devtoolCommand(ctx, args[1:], io)
	case "health":
		return healthCommand(ctx, args[1:], io)
	case "version", "--version", "-version":
		fmt.Fprintf(io.Stdout, "serbero %s (%s %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(io.Stdout, usage)
		return nil
	default:
		fmt.Fprintln(io.Stderr, usage)
		return &usageError{msg: fmt.Sprintf("unknown command %q", args[0])}
	}
}

// parseFlags parses a subcommand's flags, turning flag errors into usage
// errors. Positional arguments are refused.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := parseFlagsAndArgs(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &usageError{msg: "unexpected arguments: " + strings.Join(fs.Args(), " ")}
	}
	return nil
}

// parseFlagsAndArgs is parseFlags for commands that take positional
// arguments (left in fs.Args()).
func parseFlagsAndArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	if errors.Is(err, flag.ErrHelp) {
		return &helpShown{usage: out.String()}
	}
	if err != nil {
		_, _ = stderr.Write(out.Bytes())
		return &usageError{msg: err.Error()}
	}
	return nil
}

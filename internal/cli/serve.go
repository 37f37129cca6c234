package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/serbero/serbero/internal/runner"
	"github.com/serbero/serbero/pkg/config"
)

func serveCommand(ctx context.Context, args []string, io IO, version string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	target := fs.String("target", "all", "service to run: relaygw, intakesvc, authsvc, mediationsvc, escalationsvc, or all (every service in this process, still talking gRPC)")
	configPath := fs.String("config", "", "config file (default $SERBERO_CONFIG, else ./config.toml)")
	dev := fs.Bool("dev", false, "development mode: text logs, and an embedded relay when no [[relays]] are configured")
	grpcListen := fs.String("grpc-listen", "", "gRPC listen address (overrides [server].grpc_listen)")
	metricsListen := fs.String("metrics-listen", "", `Prometheus listen address (overrides [server].metrics_listen; "off" disables)`)
	logFormat := fs.String("log-format", "", "json or text (overrides [server].log_format)")
	logLevel := fs.String("log-level", "", "log filter: off, error, warn, info, debug, or directives like serbero=debug (overrides [serbero].log_level)")
	if err := parseFlags(fs, args, io.Stderr); err != nil {
		return err
	}
	t, err := config.ParseTarget(*target)
	if err != nil {
		return &usageError{msg: err.Error()}
	}

	overrides := map[string]string{}
	set := func(key, v string) {
		if v != "" {
			overrides[key] = v
		}
	}
	if *dev {
		set("server.log_format", "text")
	}
	set("server.grpc_listen", *grpcListen)
	set("server.log_format", *logFormat)
	set("serbero.log_level", *logLevel)
	if *metricsListen == "off" {
		overrides["server.metrics_listen"] = ""
	} else {
		set("server.metrics_listen", *metricsListen)
	}

	loaded, err := config.Load(config.LoadOptions{Path: *configPath, Target: t, Getenv: io.Getenv, Overrides: overrides})
	if err != nil {
		return err
	}
	if err := runner.Run(ctx, runner.Options{Dev: *dev, Loaded: loaded, Stderr: io.Stderr, Target: t, Version: version}); err != nil {
		return fmt.Errorf("serve %s: %w", t, err)
	}
	return nil
}

package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/serbero/serbero/pkg/config"
	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/pgdb"
	"github.com/serbero/serbero/pkg/schema"
)

func migrateCommand(ctx context.Context, args []string, io IO) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	configPath := fs.String("config", "", "config file (default $SERBERO_CONFIG, else ./config.toml); only [database] is used")
	dbURL := fs.String("database-url", "", "Postgres URL (default $SERBERO_DATABASE_URL, else the config file's [database].url)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: serbero migrate up|status [--database-url URL | --config PATH]")
		fs.PrintDefaults()
	}
	// The action may come before or after the flags.
	var action string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		action, args = args[0], args[1:]
	}
	if err := parseFlagsAndArgs(fs, args, io.Stderr); err != nil {
		return err
	}
	if action == "" && fs.NArg() == 1 {
		action = fs.Arg(0)
	} else if fs.NArg() > 0 {
		action = ""
	}
	if action != "up" && action != "status" {
		fs.Usage()
		return &usageError{msg: "migrate needs exactly one of: up, status"}
	}

	url, err := databaseURL(*dbURL, *configPath, io.Getenv)
	if err != nil {
		return err
	}
	pool, err := pgdb.Open(ctx, url, 2)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := logging.New(io.Stderr, "text", 0)

	switch action {
	case "up":
		applied, err := pgdb.MigrateUp(ctx, pool, log)
		if err != nil {
			return err
		}
		for _, m := range applied {
			fmt.Fprintf(io.Stdout, "applied %05d %s (%s)\n", m.Version, m.Name, m.Duration.Round(time.Millisecond))
		}
		fmt.Fprintf(io.Stdout, "schema at version %d (%d applied now)\n", schema.Version(), len(applied))
	case "status":
		st, err := pgdb.Status(ctx, pool)
		if err != nil {
			return err
		}
		for _, m := range st {
			state := "pending"
			if !m.AppliedAt.IsZero() {
				state = "applied " + m.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(io.Stdout, "%05d %-28s %s\n", m.Version, m.Name, state)
		}
	}
	return nil
}

// databaseURL finds the database URL for migrate without requiring a full
// service configuration: flag, then SERBERO_DATABASE_URL(_FILE), then the
// config file.
func databaseURL(flagURL, configPath string, getenv func(string) string) (string, error) {
	if flagURL != "" {
		return flagURL, nil
	}
	s, err := config.EnvSecret(getenv, "SERBERO_DATABASE_URL")
	if err != nil {
		return "", err
	}
	if s.IsSet() {
		return s.Reveal(), nil
	}
	l, err := config.Load(config.LoadOptions{Path: configPath, Getenv: getenv})
	if err != nil {
		return "", err
	}
	if !l.Config.Database.URL.IsSet() {
		return "", pgdb.ErrNoURL
	}
	return l.Config.Database.URL.Reveal(), nil
}

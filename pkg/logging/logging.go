// Package logging builds the process's slog.Logger: JSON in production,
// text for a terminal, at the level from [serbero].log_level / SERBERO_LOG.
//
// Loggers are passed explicitly to every component; nothing here sets the
// slog default. Never log keys, DM or chat plaintext, or rationale text: log
// event ids, dispute ids and counts.
package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// ParseLevel reads a level. Besides plain levels (debug, info, warn, error,
// plus trace as debug) it accepts the reference's EnvFilter directives such
// as "serbero=debug,nostr_sdk=warn": the serbero directive wins, else the
// first bare level, else info.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return slog.LevelInfo, nil
	}
	var bare string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		target, level, hasTarget := strings.Cut(part, "=")
		if !hasTarget {
			if bare == "" {
				bare = part
			}
			continue
		}
		if strings.TrimSpace(target) == "serbero" {
			return levelOf(strings.TrimSpace(level))
		}
	}
	if bare == "" {
		return slog.LevelInfo, nil
	}
	return levelOf(bare)
}

func levelOf(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace", "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	default:
		return 0, fmt.Errorf("unknown log level %q (want debug, info, warn or error)", s)
	}
}

// New returns a logger writing to w in format "json" or "text".
func New(w io.Writer, format string, level slog.Level) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Discard returns a logger that drops everything (for tests that do not
// assert on logs).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

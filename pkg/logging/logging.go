// Package logging builds the process's slog.Logger: JSON in production,
// text for a terminal, at the level of the [serbero].log_level / SERBERO_LOG
// filter (ParseFilter).
//
// Loggers are passed explicitly to every component; nothing here sets the
// slog default. Never log keys, DM or chat plaintext, or rationale text: log
// event ids, dispute ids and counts.
package logging

import (
	"io"
	"log/slog"
)

// ParseLevel returns the level of a log filter (see ParseFilter). Every
// filter string starts, so it never fails; the warnings about ignored
// directives come from ParseFilter (config loading reports them).
func ParseLevel(s string) (slog.Level, error) {
	return ParseFilter(s).Level, nil
}

// New returns a logger writing to w in format "json" or "text".
// LevelOff (or above) drops every record.
func New(w io.Writer, format string, level slog.Level) *slog.Logger {
	if level >= LevelOff {
		return Discard()
	}
	opts := &slog.HandlerOptions{Level: level}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// Discard returns a logger that drops everything (for tests that do not
// assert on logs).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

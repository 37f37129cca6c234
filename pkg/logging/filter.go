package logging

import (
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
)

// LevelOff is the level of a filter that turns logging off: New returns a
// logger that drops every record.
const LevelOff = slog.Level(math.MaxInt32)

// target is the name Serbero's own log lines answer to in a filter
// directive ("serbero=debug").
const target = "serbero"

// Filter is a parsed [serbero].log_level / SERBERO_LOG value.
type Filter struct {
	// Level is the least level logged; LevelOff logs nothing.
	Level slog.Level
	// Warnings name each directive that was ignored and why.
	Warnings []string
}

// ParseFilter reads a log filter in the reference's EnvFilter syntax:
// comma-separated directives, each a level ("debug"), a target and a level
// ("serbero=debug", "nostr_sdk=warn") or a bare target ("serbero", meaning
// everything from it). Levels are off, error, warn, info, debug and trace
// in any case, or 0 (off) to 5 (trace). Every string is accepted, best
// effort: the serbero directive decides, else the last bare level, else
// info; directives that do not parse are ignored with a warning. See
// docs/config.md#log-level.
func ParseFilter(s string) Filter {
	f := Filter{Level: slog.LevelInfo}
	var (
		global, own       slog.Level
		hasGlobal, hasOwn bool
	)
	for _, raw := range strings.Split(s, ",") {
		d := strings.TrimSpace(raw)
		if d == "" {
			continue
		}
		// The level follows the last '=' (span field filters may hold '='
		// too, inside their brackets).
		name, levelText, hasLevel := d, "", false
		if i := strings.LastIndexByte(d, '='); i >= 0 && !strings.ContainsAny(d[i+1:], "]}") {
			name, levelText, hasLevel = d[:i], d[i+1:], true
		}
		name = strings.TrimSpace(name)
		if i := strings.IndexByte(name, '['); i >= 0 {
			// target[span{field=value}]: span filters do not apply to
			// Serbero's logs; the target part still counts.
			name = strings.TrimSpace(name[:i])
		}
		if !hasLevel {
			if lvl, ok := levelOf(name); ok {
				global, hasGlobal = lvl, true
				continue
			}
			if name == target {
				own, hasOwn = slog.LevelDebug, true // a bare target enables everything from it
			}
			continue
		}
		lvl, ok := levelOf(strings.TrimSpace(levelText))
		if !ok {
			f.Warnings = append(f.Warnings, fmt.Sprintf("log filter directive %q ignored: unknown level %q (want off, error, warn, info, debug or trace)", d, strings.TrimSpace(levelText)))
			continue
		}
		switch name {
		case "":
			// "[span]=level" without a target: nothing of Serbero's to filter.
			f.Warnings = append(f.Warnings, fmt.Sprintf("log filter directive %q ignored: span filters do not apply to Serbero's logs", d))
		case target:
			own, hasOwn = lvl, true
		}
	}
	switch {
	case hasOwn:
		f.Level = own
	case hasGlobal:
		f.Level = global
	}
	return f
}

// levelOf reads one level name or number.
func levelOf(s string) (slog.Level, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		levels := []slog.Level{LevelOff, slog.LevelError, slog.LevelWarn, slog.LevelInfo, slog.LevelDebug, slog.LevelDebug}
		if n < 0 || n >= len(levels) {
			return 0, false
		}
		return levels[n], true
	}
	switch strings.ToLower(s) {
	case "off":
		return LevelOff, true
	case "error":
		return slog.LevelError, true
	case "warn", "warning":
		return slog.LevelWarn, true
	case "info":
		return slog.LevelInfo, true
	case "debug", "trace":
		return slog.LevelDebug, true
	}
	return 0, false
}

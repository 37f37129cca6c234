package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/logging"
)

func TestParseFilter(t *testing.T) {
	t.Parallel()

	tests := []struct {
		in       string
		want     slog.Level
		warnings []string
	}{
		{in: "", want: slog.LevelInfo},
		{in: "info", want: slog.LevelInfo},
		{in: "DEBUG", want: slog.LevelDebug},
		{in: "trace", want: slog.LevelDebug},
		{in: "warn", want: slog.LevelWarn},
		{in: "error", want: slog.LevelError},
		{in: "off", want: logging.LevelOff},
		{in: "OFF", want: logging.LevelOff},
		{in: "serbero=off", want: logging.LevelOff},
		{in: "serbero=off,nostr_sdk=warn", want: logging.LevelOff},
		{in: "serbero=debug,nostr_sdk=warn", want: slog.LevelDebug},
		{in: "warn,serbero=error", want: slog.LevelError},
		{in: "serbero=error,warn", want: slog.LevelError},
		{in: "nostr_sdk=warn", want: slog.LevelInfo},
		{in: "info,off", want: logging.LevelOff},
		{in: "serbero", want: slog.LevelDebug},
		{in: " serbero = warn , ", want: slog.LevelWarn},
		{in: "serbero[session{id=1}]=debug", want: slog.LevelDebug},
		{in: "0", want: logging.LevelOff},
		{in: "2", want: slog.LevelWarn},
		{in: "serbero=5", want: slog.LevelDebug},
		{in: "loud", want: slog.LevelInfo}, // a bare word is a target, as in EnvFilter
		{in: "serbero=loud", want: slog.LevelInfo, warnings: []string{`log filter directive "serbero=loud" ignored: unknown level "loud"`}},
		{in: "serbero=loud,warn", want: slog.LevelWarn, warnings: []string{`"serbero=loud" ignored`}},
		{in: "[span]=debug", want: slog.LevelInfo, warnings: []string{"span filters do not apply"}},
		{in: "serbero=9", want: slog.LevelInfo, warnings: []string{`unknown level "9"`}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			f := logging.ParseFilter(tt.in)
			require.Equal(t, tt.want, f.Level)
			require.Len(t, f.Warnings, len(tt.warnings))
			for i, w := range tt.warnings {
				require.Contains(t, f.Warnings[i], w)
			}
			lvl, err := logging.ParseLevel(tt.in)
			require.NoError(t, err, "every filter string starts")
			require.Equal(t, tt.want, lvl)
		})
	}
}

func TestNewOffLogsNothing(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"json", "text"} {
		var buf bytes.Buffer
		log := logging.New(&buf, format, logging.ParseFilter("serbero=off").Level)
		log.Error("must not appear", "error", "x")
		require.Empty(t, buf.String(), format)

		log = logging.New(&buf, format, logging.ParseFilter("warn").Level)
		log.Info("quiet")
		log.Warn("loud")
		require.NotContains(t, buf.String(), "quiet")
		require.Equal(t, 1, strings.Count(buf.String(), "loud"), format)
	}
}

// FuzzParseFilter: every string yields one of the known levels, and each
// warning names a directive of the input.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{"", "info", "off", "serbero=off", "serbero=debug,nostr_sdk=warn", "serbero[a{b=c}]=trace", "3", "x=y=z", ",,=", "[]=", "serbero=loud"} {
		f.Add(s)
	}
	known := map[slog.Level]bool{slog.LevelDebug: true, slog.LevelInfo: true, slog.LevelWarn: true, slog.LevelError: true, logging.LevelOff: true}
	f.Fuzz(func(t *testing.T, s string) {
		got := logging.ParseFilter(s)
		require.True(t, known[got.Level], "level %v", got.Level)
		for _, w := range got.Warnings {
			require.True(t, strings.HasPrefix(w, "log filter directive "), w)
		}
	})
}

// Package logtest is the test log sink every Serbero test shares: a
// concurrency-safe buffer that a *slog.Logger writes JSON lines to, with
// helpers to read them back as text or as records. Test-only.
package logtest

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
)

// Buffer collects log output from any number of goroutines. Its zero value
// is ready to use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer; safe for concurrent use.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Contains reports whether the output so far contains s.
func (b *Buffer) Contains(s string) bool { return strings.Contains(b.String(), s) }

// Lines returns the complete lines written so far, without their newlines.
// A trailing partial line (a write still in progress) is left out.
func (b *Buffer) Lines() []string {
	s := b.String()
	end := strings.LastIndexByte(s, '\n')
	if end < 0 {
		return nil
	}
	return strings.Split(s[:end], "\n")
}

// Record is one JSON log line decoded: "time", "level", "msg" and every
// attribute (groups as nested maps).
type Record map[string]any

// Msg returns the record's message.
func (r Record) Msg() string { s, _ := r[slog.MessageKey].(string); return s }

// Level returns the record's level as written ("DEBUG", "INFO", …).
func (r Record) Level() string { s, _ := r[slog.LevelKey].(string); return s }

// Str returns the string attribute key, or "" when it is absent or not a
// string.
func (r Record) Str(key string) string { s, _ := r[key].(string); return s }

// Records decodes every complete line that is a JSON object. Lines that
// are not (text handlers, stray prints) are skipped.
func (b *Buffer) Records() []Record {
	var out []Record
	for _, line := range b.Lines() {
		var r Record
		if json.Unmarshal([]byte(line), &r) == nil && r != nil {
			out = append(out, r)
		}
	}
	return out
}

// Find returns the records whose message is msg.
func (b *Buffer) Find(msg string) []Record {
	var out []Record
	for _, r := range b.Records() {
		if r.Msg() == msg {
			out = append(out, r)
		}
	}
	return out
}

// New returns a logger writing JSON at debug level and above into a new
// Buffer.
func New() (*slog.Logger, *Buffer) { return NewLevel(slog.LevelDebug) }

// NewLevel returns a logger writing JSON at level and above into a new
// Buffer.
func NewLevel(level slog.Leveler) (*slog.Logger, *Buffer) {
	b := &Buffer{}
	return slog.New(slog.NewJSONHandler(b, &slog.HandlerOptions{Level: level})), b
}

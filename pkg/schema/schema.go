// Package schema embeds Serbero's database migrations: numbered SQL files,
// one shared schema for all services, applied only by `serbero migrate up`
// (never by serve). Version is the version this binary expects; readiness
// fails until the database reaches it.
package schema

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

//go:embed migrations/*.sql
var files embed.FS

// Migrations returns the migration files (the directory's contents).
func Migrations() fs.FS {
	sub, err := fs.Sub(files, "migrations")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory exists
	}
	return sub
}

// Version returns the highest migration number embedded in this binary.
func Version() int64 {
	var v int64
	for _, name := range names() {
		num, _, _ := strings.Cut(name, "_")
		n, err := strconv.ParseInt(num, 10, 64)
		if err == nil && n > v {
			v = n
		}
	}
	return v
}

// Fingerprint identifies the exact migration contents (for reusing a
// migrated test template database only when nothing changed).
func Fingerprint() string {
	h := sha256.New()
	for _, name := range names() {
		b, err := files.ReadFile(path.Join("migrations", name))
		if err != nil {
			panic(err)
		}
		h.Write([]byte(name))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func names() []string {
	entries, err := files.ReadDir("migrations")
	if err != nil {
		panic(err)
	}
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

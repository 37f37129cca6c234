package schema_test

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/schema"
)

// allowed lists today's SQL that names a table its package does not own.
// It is empty; the test fails both for a new violation and
// for an entry that no longer happens (remove it then). Keys are
// "<package dir> -> <object>".
func allowList() map[string]string {
	return map[string]string{}
}

// created lists the tables and sequences the migrations create (Up
// sections), in file order.
func created(t *testing.T) []string {
	t.Helper()
	re := regexp.MustCompile(`(?im)^\s*CREATE\s+(?:UNLOGGED\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?([a-z_][a-z0-9_]*)`)
	var out []string
	err := fs.WalkDir(schema.Migrations(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(schema.Migrations(), p)
		if err != nil {
			return err
		}
		up, _, _ := strings.Cut(string(b), "-- +goose Down")
		for _, m := range re.FindAllStringSubmatch(up, -1) {
			out = append(out, m[1])
		}
		return nil
	})
	require.NoError(t, err)
	require.NotEmpty(t, out)
	return out
}

func TestEveryTableHasOneOwnerAndAHome(t *testing.T) {
	t.Parallel()
	objects := created(t)
	for _, name := range objects {
		owner, ok := schema.OwnerOf(name)
		require.True(t, ok, "%s has no owner: name it with its owner's prefix (%v) or add it to schema.Grandfathered", name, schema.Prefixes())
		require.Contains(t, schema.Owners(), owner)
		if !schema.IsGrandfathered(name) {
			require.False(t, owner.IsContract(), "%s: a contract table is always listed by name", name)
		}
	}
	for _, g := range schema.Grandfathered() {
		if g.Name == "serbero_schema_migrations" { // created by goose, not by a migration file
			continue
		}
		require.Contains(t, objects, g.Name, "grandfathered %s is not created by any migration: remove it", g.Name)
	}
	o, ok := schema.OwnerOf("relaygw_anything_new")
	require.True(t, ok)
	require.Equal(t, schema.OwnerRelaygw, o)
	_, ok = schema.OwnerOf("unprefixed_table")
	require.False(t, ok)
}

// repoRoot finds the directory holding go.work.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		require.NotEqual(t, parent, dir, "go.work not found above %s: the ownership scan needs the repository", dir)
		dir = parent
	}
}

// sqlRefs finds the objects an SQL text names after FROM, JOIN, INTO,
// UPDATE, TABLE (incl. DELETE FROM, TRUNCATE TABLE) or in nextval('…').
var (
	sqlRef     = regexp.MustCompile(`(?i)\b(?:FROM|JOIN|INTO|UPDATE|TABLE|TRUNCATE)\s+(?:ONLY\s+)?([a-z_][a-z0-9_]*)`)
	nextvalRef = regexp.MustCompile(`(?i)nextval\(\s*'([a-z_][a-z0-9_]*)'`)
)

// knownName maps a referenced name to a migration object: the object
// itself, or the table of an implicit column sequence (<table>_<col>_seq).
func knownName(name string, objects []string) (string, bool) {
	name = strings.ToLower(name)
	if slices.Contains(objects, name) {
		return name, true
	}
	if strings.HasSuffix(name, "_seq") {
		for _, o := range objects {
			if strings.HasPrefix(name, o+"_") {
				return name, true
			}
		}
	}
	return "", false
}

func ownerOfRef(name string, objects []string) schema.Owner {
	if o, ok := schema.OwnerOf(name); ok && slices.Contains(objects, name) {
		return o
	}
	best := ""
	for _, o := range objects {
		if strings.HasPrefix(name, o+"_") && len(o) > len(best) {
			best = o
		}
	}
	o, _ := schema.OwnerOf(best)
	return o
}

// packageOwner is the owner a directory's code acts as: a service, a
// contract package, or nobody.
func packageOwner(rel string) schema.Owner {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) >= 2 && parts[0] == "services" {
		return schema.Owner(parts[1])
	}
	if len(parts) >= 2 && parts[0] == "pkg" {
		return schema.Owner("pkg/" + parts[1])
	}
	return ""
}

// unit is the allow-list key of a file's directory: services/<svc> or
// pkg/<name> or the directory itself.
func unit(rel string) string {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	if len(parts) >= 2 && (parts[0] == "services" || parts[0] == "pkg") {
		return parts[0] + "/" + parts[1]
	}
	return filepath.ToSlash(filepath.Dir(rel))
}

func TestSQLNamesOnlyOwnedTables(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	objects := created(t)
	objects = append(objects, "serbero_schema_migrations")
	found := map[string][]string{} // allow-list key -> positions
	for _, top := range []string{"services", "pkg", "internal", "cmd"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				if d.Name() == "testdata" || d.Name() == "gen" {
					return filepath.SkipDir
				}
				return nil
			}
			if !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			if strings.HasPrefix(filepath.ToSlash(rel), "pkg/schema/") {
				return nil // the registry names every table
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, p, nil, parser.SkipObjectResolution)
			if err != nil {
				return err
			}
			me := packageOwner(rel)
			ast.Inspect(f, func(n ast.Node) bool {
				lit, ok := n.(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return true
				}
				text, err := strconv.Unquote(lit.Value)
				if err != nil {
					return true
				}
				var names []string
				for _, m := range sqlRef.FindAllStringSubmatch(text, -1) {
					names = append(names, m[1])
				}
				for _, m := range nextvalRef.FindAllStringSubmatch(text, -1) {
					names = append(names, m[1])
				}
				for _, raw := range names {
					name, ok := knownName(raw, objects)
					if !ok {
						continue
					}
					if ownerOfRef(name, objects) == me {
						continue
					}
					key := unit(rel) + " -> " + name
					found[key] = append(found[key], fmt.Sprintf("%s:%d", filepath.ToSlash(rel), fset.Position(lit.Pos()).Line))
				}
				return true
			})
			return nil
		})
		if os.IsNotExist(err) {
			continue
		}
		require.NoError(t, err)
	}

	allowed := allowList()
	var keys []string
	for k := range allowed {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	t.Log("allow-list of SQL naming a table owned by another (empty by design):")
	for _, k := range keys {
		t.Logf("  %s  (%s) at %v", k, allowed[k], found[k])
	}
	for k, at := range found {
		if _, ok := allowed[k]; !ok {
			t.Errorf("%s: SQL names a table this package does not own (at %v); ask its owner over gRPC, use its contract package, or move the code (docs/architecture.md#who-owns-which-table)", k, at)
		}
	}
	for _, k := range keys {
		if _, ok := found[k]; !ok {
			t.Errorf("allow-list entry %q no longer happens: remove it", k)
		}
	}
}

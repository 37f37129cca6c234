package config

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// document is what decodeDocument learned besides the Config.
type document struct {
	// key is [serbero].private_key, decoded only for targets that hold it.
	key Secret
	// hadKey reports whether the file defines [serbero].private_key.
	hadKey bool
	// warnings are the unknown keys.
	warnings []string
}

// decodeDocument parses a TOML file and decodes it into cfg (which holds
// the defaults).
//
// Key custody (docs/config.md#key-custody): the file is parsed into a tree
// first, and [serbero].private_key is taken out of that tree before
// anything is decoded into cfg. TOML spells that one key many ways (a
// [serbero] table, a dotted key, an inline table, a quoted key; basic,
// literal or multi-line strings), but they all parse to the same place in
// the tree, so every form is removed. Only a target that holds the key
// decodes it, into a Secret.
func decodeDocument(data []byte, cfg *Config, holdsKey bool) (document, error) {
	var doc document
	var top map[string]toml.Primitive
	md, err := toml.Decode(string(data), &top)
	if err != nil {
		return doc, parseError(err, holdsKey)
	}

	var serbero map[string]toml.Primitive
	if p, ok := top["serbero"]; ok {
		if err := md.PrimitiveDecode(p, &serbero); err != nil {
			return doc, fmt.Errorf("toml parse error: %w", err)
		}
	}
	keyValue, hadKey := serbero["private_key"]
	delete(serbero, "private_key")
	doc.hadKey = hadKey
	if hadKey && holdsKey {
		if err := md.PrimitiveDecode(keyValue, &doc.key); err != nil {
			return doc, fmt.Errorf("toml parse error: [serbero].private_key: %w", err)
		}
	}

	// Every section but [serbero] decodes whole; [serbero] decodes key by
	// key from what is left of its tree.
	root := reflect.ValueOf(cfg).Elem()
	for i := range root.NumField() {
		name := tomlName(root.Type().Field(i))
		if name == "" {
			continue
		}
		field := root.Field(i).Addr().Interface()
		if name == "serbero" {
			unknown, err := decodeTable(md, serbero, root.Field(i))
			if err != nil {
				return doc, err
			}
			for _, k := range unknown {
				doc.warnings = append(doc.warnings, unknownKeyWarning("serbero."+k))
			}
			continue
		}
		if p, ok := top[name]; ok {
			if err := md.PrimitiveDecode(p, field); err != nil {
				return doc, fmt.Errorf("toml parse error: %w", err)
			}
		}
	}
	doc.warnings = append(doc.warnings, unknownKeyWarnings(md)...)
	sort.Strings(doc.warnings)
	return doc, nil
}

// decodeTable decodes the keys of one table into the fields of the struct
// v by their toml tags and returns the keys no field has, sorted.
func decodeTable(md toml.MetaData, table map[string]toml.Primitive, v reflect.Value) ([]string, error) {
	fields := map[string]reflect.Value{}
	for i := range v.NumField() {
		if name := tomlName(v.Type().Field(i)); name != "" {
			fields[name] = v.Field(i)
		}
	}
	var unknown []string
	for k, p := range table {
		f, ok := fields[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		if err := md.PrimitiveDecode(p, f.Addr().Interface()); err != nil {
			return nil, fmt.Errorf("toml parse error: %w", err)
		}
	}
	sort.Strings(unknown)
	return unknown, nil
}

// parseError wraps a TOML syntax error. For targets that never read the
// secret key, an error inside the value of [serbero].private_key keeps its
// position but not its message: the parser's messages quote the text they
// stumbled on, and that text would be part of the key.
func parseError(err error, holdsKey bool) error {
	var pe toml.ParseError
	if !holdsKey && errors.As(err, &pe) && isPrivateKey(pe.LastKey) {
		return fmt.Errorf("toml parse error: toml: line %d (last key %q): the value is not valid TOML (not shown: this target never reads [serbero].private_key)",
			pe.Position.Line, pe.LastKey)
	}
	return fmt.Errorf("toml parse error: %w", err)
}

// isPrivateKey reports whether a dotted key path is [serbero].private_key
// or inside it.
func isPrivateKey(path string) bool {
	return path == "serbero.private_key" || strings.HasPrefix(path, "serbero.private_key.")
}

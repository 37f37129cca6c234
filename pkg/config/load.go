package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultPath is the config file used when neither --config nor
// SERBERO_CONFIG is given.
const DefaultPath = "config.toml"

// LoadOptions says where to load from and for which target.
type LoadOptions struct {
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
	// Overrides are applied last (command-line flags), keyed by
	// "section.key", for example "server.grpc_listen".
	Overrides map[string]string
	// Path is the --config value; empty means SERBERO_CONFIG, then
	// DefaultPath.
	Path string
	// ReadFile reads files; nil means os.ReadFile.
	ReadFile func(string) ([]byte, error)
	// Target decides whether Serbero's secret key may be loaded.
	Target Target
}

// Loaded is the result of Load.
type Loaded struct {
	// Config is the validated configuration.
	Config *Config
	// Path is the file that was read.
	Path string
	// PrivateKey is Serbero's secret key, set only for targets that hold it.
	PrivateKey Secret
	// Warnings are problems worth a loud log line that do not stop start-up
	// (unknown keys, a key in a file that should not hold it).
	Warnings []string
}

// ResolvePath applies the --config, SERBERO_CONFIG, ./config.toml order.
// SERBERO_CONFIG is used verbatim, as in the reference.
func ResolvePath(flagPath string, getenv func(string) string) string {
	if flagPath != "" {
		return flagPath
	}
	if p := getenv("SERBERO_CONFIG"); p != "" {
		return p
	}
	return DefaultPath
}

// Load reads, overrides and validates the configuration.
func Load(opts LoadOptions) (*Loaded, error) {
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	readFile := opts.ReadFile
	if readFile == nil {
		readFile = os.ReadFile
	}
	path := ResolvePath(opts.Path, getenv)

	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration error: failed to read config file at %s: %w", path, err)
	}
	// The file may hold the secret key; do not keep its bytes around.
	defer clear(data)

	holdsKey := opts.Target.HoldsKey()
	if !holdsKey {
		// This target never reads the key: blank its value in the buffer
		// before anything copies or parses it (the decoder would keep it
		// in its metadata, beyond the reach of clear).
		blankPrivateKey(data)
	}
	cfg := Default()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		return nil, fmt.Errorf("toml parse error: %w", err)
	}
	out := &Loaded{Config: &cfg, Path: path}
	out.Warnings = unknownKeyWarnings(md)

	if md.IsDefined("serbero", "private_key") && !holdsKey {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"config file %s contains [serbero].private_key, which target %s never reads; mount the key only into relaygw (SERBERO_PRIVATE_KEY_FILE)",
			path, opts.Target))
	}
	if holdsKey {
		var keyFile struct {
			Serbero struct {
				PrivateKey Secret `toml:"private_key"`
			} `toml:"serbero"`
		}
		if _, err := toml.Decode(string(data), &keyFile); err != nil {
			return nil, fmt.Errorf("toml parse error: %w", err)
		}
		out.PrivateKey = keyFile.Serbero.PrivateKey
		key, err := secretFromEnv(getenv, readFile, "SERBERO_PRIVATE_KEY")
		if err != nil {
			return nil, err
		}
		if key.IsSet() {
			out.PrivateKey = key
		}
	}

	if err := applyEnv(&cfg, getenv, readFile); err != nil {
		return nil, err
	}
	if err := applyOverrides(&cfg, opts.Overrides); err != nil {
		return nil, err
	}
	// Like the Nostr key, the reasoning credential is read (and required)
	// only by the target that uses it.
	if cfg.Reasoning.Enabled && opts.Target.UsesReasoning() {
		name := strings.TrimSpace(cfg.Reasoning.APIKeyEnv)
		if name != "" {
			key, err := secretFromEnv(getenv, readFile, name)
			if err != nil {
				return nil, err
			}
			cfg.Reasoning.APIKey = key
		}
		if err := cfg.ValidateReasoningCredential(); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if holdsKey && !out.PrivateKey.IsSet() {
		return nil, errors.New("configuration error: [serbero].private_key is required for target " + string(opts.Target) +
			" (set it in the file, SERBERO_PRIVATE_KEY or SERBERO_PRIVATE_KEY_FILE)")
	}
	return out, nil
}

// ignoredKeys are known keys that the loader deliberately does not decode
// into Config.
var ignoredKeys = map[string]bool{
	"serbero.private_key": true, // read only by key-holding targets
}

func unknownKeyWarnings(md toml.MetaData) []string {
	var warnings []string
	for _, k := range md.Undecoded() {
		name := k.String()
		if ignoredKeys[name] {
			continue
		}
		if name == "reasoning.api_key" {
			warnings = append(warnings, "config key reasoning.api_key is ignored: the credential comes only from the environment variable named by [reasoning].api_key_env")
			continue
		}
		warnings = append(warnings, fmt.Sprintf("unknown config key %q ignored (misspelled? it has no effect)", name))
	}
	sort.Strings(warnings)
	return warnings
}

// EnvSecret reads the secret NAME from the environment, or from the file
// named by NAME_FILE. Both are trimmed; empty values count as unset.
func EnvSecret(getenv func(string) string, name string) (Secret, error) {
	return secretFromEnv(getenv, os.ReadFile, name)
}

// secretFromEnv reads NAME, else the file named by NAME_FILE. Both are
// trimmed; empty values count as unset.
func secretFromEnv(getenv func(string) string, readFile func(string) ([]byte, error), name string) (Secret, error) {
	if v := strings.TrimSpace(getenv(name)); v != "" {
		return NewSecret(v), nil
	}
	path := strings.TrimSpace(getenv(name + "_FILE"))
	if path == "" {
		return Secret{}, nil
	}
	b, err := readFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("configuration error: %s_FILE: %w", name, err)
	}
	defer clear(b)
	return NewSecret(strings.TrimSpace(string(b))), nil
}

// field is one overridable scalar key.
type field struct {
	alias string // reference env name, if any
	key   string // "section.key"
	value reflect.Value
}

// scalarFields lists every scalar key of the section structs of cfg.
func scalarFields(cfg *Config) []field {
	var out []field
	root := reflect.ValueOf(cfg).Elem()
	rootType := root.Type()
	for i := range rootType.NumField() {
		sf := rootType.Field(i)
		section := tomlName(sf)
		if section == "" || sf.Type.Kind() != reflect.Struct {
			continue // arrays of tables are file-only
		}
		sv := root.Field(i)
		for j := range sf.Type.NumField() {
			kf := sf.Type.Field(j)
			key := tomlName(kf)
			if key == "" {
				continue
			}
			out = append(out, field{key: section + "." + key, alias: kf.Tag.Get("env"), value: sv.Field(j)})
		}
	}
	return out
}

func tomlName(sf reflect.StructField) string {
	name, _, _ := strings.Cut(sf.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// EnvName is the generic environment variable for a "section.key".
func EnvName(key string) string {
	return "SERBERO_" + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key))
}

func applyEnv(cfg *Config, getenv func(string) string, readFile func(string) ([]byte, error)) error {
	for _, f := range scalarFields(cfg) {
		names := []string{EnvName(f.key)}
		if f.alias != "" {
			names = []string{f.alias, EnvName(f.key)} // the generic name wins when both are set
		}
		for _, name := range names {
			if _, isSecret := f.value.Interface().(Secret); isSecret {
				s, err := secretFromEnv(getenv, readFile, name)
				if err != nil {
					return err
				}
				if s.IsSet() {
					f.value.Set(reflect.ValueOf(s))
				}
				continue
			}
			v := strings.TrimSpace(getenv(name))
			if v == "" {
				continue
			}
			if err := setScalar(f.value, v); err != nil {
				return fmt.Errorf("configuration error: %s (overrides %s): %w", name, f.key, err)
			}
		}
	}
	return nil
}

func applyOverrides(cfg *Config, overrides map[string]string) error {
	if len(overrides) == 0 {
		return nil
	}
	byKey := map[string]reflect.Value{}
	for _, f := range scalarFields(cfg) {
		byKey[f.key] = f.value
	}
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v, ok := byKey[k]
		if !ok {
			return fmt.Errorf("configuration error: unknown key %q", k)
		}
		if err := setScalar(v, overrides[k]); err != nil {
			return fmt.Errorf("configuration error: %s: %w", k, err)
		}
	}
	return nil
}

func setScalar(v reflect.Value, s string) error {
	switch v.Interface().(type) {
	case Secret:
		v.Set(reflect.ValueOf(NewSecret(s)))
		return nil
	case Permission:
		p, err := ParsePermission(s)
		if err != nil {
			return err
		}
		v.Set(reflect.ValueOf(p))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("invalid boolean %q", s)
		}
		v.SetBool(b)
	case reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("cannot be set from a string (kind %s)", v.Kind())
	}
	return nil
}

// privateKeyLine matches a private_key assignment ([serbero] table or
// dotted form) with a basic or literal one-line string value; group 1 is
// the value between its quotes.
var privateKeyLine = regexp.MustCompile(`(?m)^[ \t]*(?:serbero\.)?private_key[ \t]*=[ \t]*["']([^"'\r\n]*)["']`)

// blankPrivateKey overwrites, in place, the value of every private_key
// assignment in a TOML document with 'x' (same length: the document still
// parses, and the key is still seen as defined, so the custody warning is
// given).
func blankPrivateKey(data []byte) {
	for _, m := range privateKeyLine.FindAllSubmatchIndex(data, -1) {
		for i := m[2]; i < m[3]; i++ {
			data[i] = 'x'
		}
	}
}

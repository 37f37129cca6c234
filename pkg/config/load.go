package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/serbero/serbero/pkg/logging"
	"github.com/serbero/serbero/pkg/nostrkey"
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

// LoadError is a configuration that cannot be used. It prints as the
// reference daemon does: "failed to load config from <path>: <reason>".
type LoadError struct {
	// Path is the file that was read.
	Path string
	// Err is the reason, starting "configuration error: " or "toml parse
	// error: " as in the reference.
	Err error
}

func (e *LoadError) Error() string {
	return "failed to load config from " + e.Path + ": " + e.Err.Error()
}

func (e *LoadError) Unwrap() error { return e.Err }

// KeyError is a key in an otherwise valid configuration that does not
// parse. It prints as the reference does: "invalid key: invalid mostro
// pubkey: <reason>".
type KeyError struct {
	// Err says which key and why.
	Err error
}

func (e *KeyError) Error() string { return "invalid key: " + e.Err.Error() }

func (e *KeyError) Unwrap() error { return e.Err }

// Load reads, overrides and validates the configuration, then parses the
// Mostro pubkey. A problem with the file, its values or the environment is
// a *LoadError; a Mostro pubkey that is not a key is a *KeyError (the
// reference's two start-up failures; see docs/config.md#errors).
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
	out, err := load(path, opts.Target, opts.Overrides, getenv, readFile)
	if err != nil {
		return nil, &LoadError{Path: path, Err: err}
	}
	pk, err := nostrkey.Normalize(out.Config.Mostro.Pubkey)
	if err != nil {
		return nil, &KeyError{Err: fmt.Errorf("invalid mostro pubkey: %w", err)}
	}
	out.Config.Mostro.Pubkey = pk
	return out, nil
}

// load is Load up to the Mostro pubkey.
func load(path string, target Target, overrides map[string]string, getenv func(string) string, readFile func(string) ([]byte, error)) (*Loaded, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("configuration error: failed to read config file at %s: %w", path, err)
	}
	// The file may hold the secret key; do not keep its bytes around.
	defer clear(data)

	holdsKey := target.HoldsKey()
	cfg := Default()
	doc, err := decodeDocument(data, &cfg, holdsKey)
	if err != nil {
		return nil, err
	}
	out := &Loaded{Config: &cfg, Path: path, Warnings: doc.warnings}
	if doc.hadKey && !holdsKey {
		out.Warnings = append(out.Warnings, fmt.Sprintf(
			"config file %s contains [serbero].private_key, which target %s never reads; mount the key only into relaygw (SERBERO_PRIVATE_KEY_FILE)",
			path, target))
	}
	if holdsKey {
		out.PrivateKey = doc.key
		key, err := secretFromEnv(getenv, readFile, "SERBERO_PRIVATE_KEY")
		if err != nil {
			return nil, err
		}
		if key.IsSet() {
			out.PrivateKey = key
		}
	}

	fileLogLevel := cfg.Serbero.LogLevel
	if err := applyEnv(&cfg, getenv, readFile); err != nil {
		return nil, err
	}
	out.Warnings = append(out.Warnings, envLogFallback(&cfg, fileLogLevel, getenv)...)
	if err := applyOverrides(&cfg, overrides); err != nil {
		return nil, err
	}
	for _, w := range logging.ParseFilter(cfg.Serbero.LogLevel).Warnings {
		out.Warnings = append(out.Warnings, "[serbero].log_level: "+w)
	}
	out.Warnings = append(out.Warnings, cfg.clampSolverAuthRetry()...)
	// Like the Nostr key, the reasoning credential is read (and required)
	// only by the target that uses it.
	if cfg.Reasoning.Enabled && target.UsesReasoning() {
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
		return nil, errors.New("configuration error: [serbero].private_key is required for target " + string(target) +
			" (set it in the file, SERBERO_PRIVATE_KEY or SERBERO_PRIVATE_KEY_FILE)")
	}
	return out, nil
}

// envLogFallback applies the reference's rule for SERBERO_LOG: it is used
// when it parses, else the file's level stands. It returns the warning when
// it falls back.
func envLogFallback(cfg *Config, fileLevel string, getenv func(string) string) []string {
	env := strings.TrimSpace(getenv("SERBERO_LOG"))
	if env == "" || cfg.Serbero.LogLevel != env || len(logging.ParseFilter(env).Warnings) == 0 {
		return nil
	}
	cfg.Serbero.LogLevel = fileLevel
	return []string{fmt.Sprintf("SERBERO_LOG=%q does not parse as a log filter; using [serbero].log_level %q", env, fileLevel)}
}

// unknownKeyWarnings lists the keys of the file that nothing decoded
// (the [serbero] table is checked by decodeDocument itself).
func unknownKeyWarnings(md toml.MetaData) []string {
	var warnings []string
	for _, k := range md.Undecoded() {
		name := k.String()
		if name == "serbero" || strings.HasPrefix(name, "serbero.") {
			continue
		}
		warnings = append(warnings, unknownKeyWarning(name))
	}
	return warnings
}

// unknownKeyWarning says that one key has no effect. It names the key,
// never its value.
func unknownKeyWarning(name string) string {
	if name == "reasoning.api_key" {
		return "config key reasoning.api_key is ignored: the credential comes only from the environment variable named by [reasoning].api_key_env"
	}
	return fmt.Sprintf("unknown config key %q ignored (misspelled? it has no effect)", name)
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

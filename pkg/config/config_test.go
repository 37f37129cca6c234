package config_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
)

// minimalPubkey is a valid x-only key (a point on secp256k1).
const minimalPubkey = "0202020202020202020202020202020202020202020202020202020202020202"

// minimal is the smallest valid file: only the required Mostro pubkey.
const minimal = `
[mostro]
pubkey = "` + minimalPubkey + `"
`

// env is a fake environment for Load.
type env map[string]string

func (e env) get(k string) string { return e[k] }

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.toml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func load(t *testing.T, content string, target config.Target, e env) (*config.Loaded, error) {
	t.Helper()
	return config.Load(config.LoadOptions{Path: writeFile(t, content), Target: target, Getenv: e.get})
}

func TestLoadReferenceSample(t *testing.T) {
	t.Parallel()

	l, err := config.Load(config.LoadOptions{Path: "testdata/reference.toml", Target: config.TargetRelaygw, Getenv: env{}.get})
	require.NoError(t, err)
	c := l.Config

	require.Equal(t, "030a11181f262d343b424950575e656c737a81888f969da4abb2b9c0c7ced5dc", c.Mostro.Pubkey, "npub normalised to hex")
	require.Equal(t, []string{"wss://relay.mostro.network", "wss://nos.lol"}, c.RelayURLs())
	require.Len(t, c.Solvers, 2)
	require.Equal(t, config.PermissionWrite, c.Solvers[0].Permission)
	require.Equal(t, config.PermissionRead, c.Solvers[1].Permission, "permission defaults to read")
	require.Equal(t, int64(300), c.Timeouts.RenotificationSeconds)
	require.Equal(t, int64(60), c.Timeouts.RenotificationCheckIntervalSeconds)
	require.Equal(t, "gpt-5", c.Reasoning.Model)
	require.True(t, c.Escalation.Enabled)
	require.Equal(t, int64(30), c.Escalation.DispatchIntervalSeconds)
	require.Equal(t, "serbero=debug,nostr_sdk=warn", c.Serbero.LogLevel)
	require.Equal(t, "nsec1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqzs9ypk7n", l.PrivateKey.Reveal())
	require.Empty(t, l.Warnings, "the reference sample has no unknown keys")
}

func TestLoadExampleConfig(t *testing.T) {
	t.Parallel()

	l, err := config.Load(config.LoadOptions{Path: "../../config.example.toml", Target: config.TargetAll, Getenv: env{}.get})
	require.NoError(t, err)
	require.Empty(t, l.Warnings)
	require.True(t, l.PrivateKey.IsSet())
}

func TestLoadDefaults(t *testing.T) {
	t.Parallel()

	l, err := load(t, minimal, config.TargetIntakesvc, env{})
	require.NoError(t, err)
	c := l.Config
	require.Equal(t, config.Default().Timeouts, c.Timeouts)
	require.False(t, c.Escalation.Enabled, "absent [escalation] means phase 4 off")
	require.Equal(t, int64(30), c.Escalation.DispatchIntervalSeconds)
	require.False(t, c.Escalation.FallbackToAllSolvers)
	require.Equal(t, int64(24), c.Mediation.SolverAuthRetryMaxAttempts)
	require.Equal(t, "SERBERO_REASONING_API_KEY", c.Reasoning.APIKeyEnv)
	require.Empty(t, c.Relays)
	require.Empty(t, c.Solvers)
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		content string
		target  config.Target
		env     env
		wantErr string
	}{
		{
			name:    "MalformedTOML",
			content: "[mostro\npubkey = 1",
			wantErr: "toml parse error",
		},
		{
			name:    "DispatchIntervalZero",
			content: minimal + "[escalation]\ndispatch_interval_seconds = 0\n",
			wantErr: "configuration error: [escalation].dispatch_interval_seconds must be a positive integer (got 0)",
		},
		{
			name:    "DispatchIntervalNegative",
			content: minimal + "[escalation]\ndispatch_interval_seconds = -5\n",
			wantErr: "[escalation].dispatch_interval_seconds must be a positive integer (got -5)",
		},
		{
			name:    "ReasoningWithoutCredential",
			content: minimal + "[reasoning]\nenabled = true\n",
			target:  config.TargetMediationsvc,
			wantErr: "configuration error: reasoning provider enabled but credential env var `SERBERO_REASONING_API_KEY` is unset or empty",
		},
		{
			name:    "ReasoningBlankKeyEnvName",
			content: minimal + "[reasoning]\nenabled = true\napi_key_env = \"  \"\n",
			target:  config.TargetAll,
			wantErr: "configuration error: [reasoning].api_key_env is empty but [reasoning].enabled = true",
		},
		{
			name:    "MissingMostroPubkey",
			content: "[serbero]\nlog_level = \"info\"\n",
			wantErr: "[mostro].pubkey is required",
		},
		{
			name:    "BadMostroPubkey",
			content: "[mostro]\npubkey = \"not-a-key\"\n",
			wantErr: "invalid key: invalid mostro pubkey: invalid public key: want 64 hex characters or an npub, got 9 characters",
		},
		{
			name:    "BadPermission",
			content: minimal + "[[solvers]]\npubkey = \"ab\"\npermission = \"admin\"\n",
			wantErr: `invalid permission "admin"`,
		},
		{
			name:    "SolverWithoutPubkey",
			content: minimal + "[[solvers]]\npermission = \"read\"\n",
			wantErr: "solvers[0].pubkey is required",
		},
		{
			name:    "RelayBadScheme",
			content: minimal + "[[relays]]\nurl = \"https://relay.example\"\n",
			wantErr: `relays[0].url "https://relay.example": scheme must be ws or wss`,
		},
		{
			name:    "WrongType",
			content: minimal + "[timeouts]\nrenotification_seconds = \"soon\"\n",
			wantErr: "toml parse error",
		},
		{
			name:    "NegativeRenotification",
			content: minimal + "[timeouts]\nrenotification_seconds = -1\n",
			wantErr: "[timeouts].renotification_seconds must not be negative (got -1)",
		},
		{
			name:    "GiftWrapLookbackTooShort",
			content: minimal + "[relaygw]\ngiftwrap_lookback_seconds = 3600\n",
			wantErr: "[relaygw].giftwrap_lookback_seconds must be at least 172800",
		},
		{
			name:    "NegativeDisputeBackfill",
			content: minimal + "[relaygw]\ndispute_backfill_seconds = -1\n",
			wantErr: "[relaygw].dispute_backfill_seconds must not be negative (got -1)",
		},
		{
			name:    "LogFormat",
			content: minimal + "[server]\nlog_format = \"xml\"\n",
			wantErr: `[server].log_format must be json or text (got "xml")`,
		},
		{
			name:    "RelaygwNeedsKey",
			content: minimal,
			target:  config.TargetRelaygw,
			wantErr: "[serbero].private_key is required for target relaygw",
		},
		{
			name:    "BadEnvBoolean",
			content: minimal,
			env:     env{"SERBERO_ESCALATION_ENABLED": "maybe"},
			wantErr: `SERBERO_ESCALATION_ENABLED (overrides escalation.enabled): invalid boolean "maybe"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			target := tt.target
			if target == "" {
				target = config.TargetIntakesvc
			}
			_, err := load(t, tt.content, target, tt.env)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestLoadReasoningCredentialOnlyForMediation(t *testing.T) {
	t.Parallel()

	content := minimal + "[reasoning]\nenabled = true\n"
	e := env{"SERBERO_REASONING_API_KEY": "sk-live"}
	for _, target := range []config.Target{config.TargetIntakesvc, config.TargetAuthsvc, config.TargetEscalationsvc} {
		l, err := load(t, content, target, env{})
		require.NoError(t, err, "target %s neither needs nor reads the reasoning key", target)
		require.False(t, l.Config.Reasoning.APIKey.IsSet())
		l, err = load(t, content, target, e)
		require.NoError(t, err)
		require.False(t, l.Config.Reasoning.APIKey.IsSet(), "target %s must not read the reasoning key", target)
	}
	l, err := load(t, content, config.TargetMediationsvc, e)
	require.NoError(t, err)
	require.Equal(t, "sk-live", l.Config.Reasoning.APIKey.Reveal())
}

func TestLoadMissingFile(t *testing.T) {
	t.Parallel()

	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := config.Load(config.LoadOptions{Path: path, Getenv: env{}.get})
	require.ErrorContains(t, err, "failed to load config from "+path+": configuration error: failed to read config file at "+path+": ")
}

// TestLoadErrorTexts: the reference's two start-up failures, word for
// word: a configuration that cannot be loaded, and a Mostro pubkey that is
// not a key (found after loading).
func TestLoadErrorTexts(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name    string
		content string
		want    string // the whole error text, after the path
		keyErr  bool
	}{
		{
			name:    "ConfigurationError",
			content: minimal + "[escalation]\ndispatch_interval_seconds = 0\n",
			want:    "configuration error: [escalation].dispatch_interval_seconds must be a positive integer (got 0)",
		},
		{
			name:    "TOMLError",
			content: minimal + "[timeouts]\nrenotification_seconds = \"soon\"\n",
			want:    `toml parse error: toml: line 5 (last key "timeouts.renotification_seconds"): incompatible types: TOML value has type string; destination has type integer`,
		},
		{
			name:    "PubkeyNotAPoint",
			content: "[mostro]\npubkey = \"" + strings.Repeat("03", 32) + "\"\n",
			want:    "invalid key: invalid mostro pubkey: invalid public key: not a point on secp256k1",
			keyErr:  true,
		},
		{
			name:    "PubkeyBadNpub",
			content: "[mostro]\npubkey = \"npub1qqqqqqqq\"\n",
			want:    "invalid key: invalid mostro pubkey: invalid public key: bad npub",
			keyErr:  true,
		},
		{
			name:    "ConfigurationErrorBeforeKey",
			content: "[mostro]\npubkey = \"nope\"\n[escalation]\ndispatch_interval_seconds = 0\n",
			want:    "configuration error: [escalation].dispatch_interval_seconds must be a positive integer (got 0)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.content)
			_, err := config.Load(config.LoadOptions{Path: path, Target: config.TargetIntakesvc, Getenv: env{}.get})
			require.Error(t, err)
			var le *config.LoadError
			var ke *config.KeyError
			if tt.keyErr {
				require.ErrorAs(t, err, &ke)
				require.NotErrorAs(t, err, &le)
				require.True(t, strings.HasPrefix(err.Error(), tt.want), "got %q", err.Error())
				return
			}
			require.ErrorAs(t, err, &le)
			require.Equal(t, path, le.Path)
			require.Equal(t, "failed to load config from "+path+": "+tt.want, err.Error())
		})
	}
}

func TestLoadLogFilter(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name     string
		file     string
		env      env
		want     string
		warnings []string
	}{
		{name: "Off", file: "off", want: "off"},
		{name: "SerberoOff", file: "serbero=off", want: "serbero=off"},
		{name: "ReferenceSample", file: "serbero=debug,nostr_sdk=warn", want: "serbero=debug,nostr_sdk=warn"},
		{name: "UnknownDirectiveWarns", file: "serbero=loud,warn", want: "serbero=loud,warn",
			warnings: []string{`[serbero].log_level: log filter directive "serbero=loud" ignored: unknown level "loud" (want off, error, warn, info, debug or trace)`}},
		{name: "EnvWins", file: "warn", env: env{"SERBERO_LOG": "serbero=off"}, want: "serbero=off"},
		{name: "EnvThatDoesNotParseFallsBack", file: "warn", env: env{"SERBERO_LOG": "serbero=loud"}, want: "warn",
			warnings: []string{`SERBERO_LOG="serbero=loud" does not parse as a log filter; using [serbero].log_level "warn"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := load(t, minimal+"[serbero]\nlog_level = \""+tt.file+"\"\n", config.TargetIntakesvc, tt.env)
			require.NoError(t, err, "every filter string the reference accepts starts")
			require.Equal(t, tt.want, l.Config.Serbero.LogLevel)
			require.Equal(t, tt.warnings, l.Warnings)
		})
	}
}

func TestLoadClampsSolverAuthRetry(t *testing.T) {
	t.Parallel()

	tests := []struct {
		name      string
		mediation string
		want      [4]int64 // initial, max interval, max total, max attempts
		warnings  []string
	}{
		{name: "Defaults", want: [4]int64{60, 3600, 86400, 24}},
		{name: "ReferenceSample", mediation: "solver_auth_retry_initial_seconds = 60\nsolver_auth_retry_max_interval_seconds = 3600\nsolver_auth_retry_max_total_seconds = 86400\nsolver_auth_retry_max_attempts = 24\n",
			want: [4]int64{60, 3600, 86400, 24}},
		{name: "OneAttempt", mediation: "solver_auth_retry_max_attempts = 1\n", want: [4]int64{60, 3600, 86400, 1}},
		{name: "Zeros", mediation: "solver_auth_retry_initial_seconds = 0\nsolver_auth_retry_max_interval_seconds = 0\nsolver_auth_retry_max_total_seconds = 0\nsolver_auth_retry_max_attempts = 0\n",
			want: [4]int64{1, 1, 1, 1},
			warnings: []string{
				"[mediation].solver_auth_retry_initial_seconds = 0 is unusable (the first retry needs a delay of at least 1 s); using 1",
				"[mediation].solver_auth_retry_max_interval_seconds = 0 is unusable (the longest delay cannot be shorter than solver_auth_retry_initial_seconds); using 1",
				"[mediation].solver_auth_retry_max_total_seconds = 0 is unusable (the retry budget must be at least 1 s); using 1",
				"[mediation].solver_auth_retry_max_attempts = 0 is unusable (at least one attempt is always made); using 1",
			}},
		{name: "IntervalBelowInitial", mediation: "solver_auth_retry_initial_seconds = 120\nsolver_auth_retry_max_interval_seconds = 60\n",
			want:     [4]int64{120, 120, 86400, 24},
			warnings: []string{"[mediation].solver_auth_retry_max_interval_seconds = 60 is unusable (the longest delay cannot be shorter than solver_auth_retry_initial_seconds); using 120"}},
		{name: "Negative", mediation: "solver_auth_retry_max_attempts = -3\n", want: [4]int64{60, 3600, 86400, 1},
			warnings: []string{"[mediation].solver_auth_retry_max_attempts = -3 is unusable (at least one attempt is always made); using 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := load(t, minimal+"[mediation]\n"+tt.mediation, config.TargetAuthsvc, env{})
			require.NoError(t, err)
			m := l.Config.Mediation
			require.Equal(t, tt.want, [4]int64{m.SolverAuthRetryInitialSeconds, m.SolverAuthRetryMaxIntervalSeconds, m.SolverAuthRetryMaxTotalSeconds, m.SolverAuthRetryMaxAttempts})
			if tt.warnings == nil {
				require.Empty(t, l.Warnings)
				return
			}
			require.Equal(t, tt.warnings, l.Warnings)
		})
	}
}

func TestLoadPathResolution(t *testing.T) {
	t.Parallel()

	require.Equal(t, "flag.toml", config.ResolvePath("flag.toml", env{"SERBERO_CONFIG": "env.toml"}.get))
	require.Equal(t, "env.toml", config.ResolvePath("", env{"SERBERO_CONFIG": "env.toml"}.get))
	require.Equal(t, "config.toml", config.ResolvePath("", env{}.get))
}

func TestLoadEnvOverrides(t *testing.T) {
	t.Parallel()

	keyFile := filepath.Join(t.TempDir(), "key")
	require.NoError(t, os.WriteFile(keyFile, []byte("  from-file-key\n"), 0o600))
	dbFile := filepath.Join(t.TempDir(), "db")
	require.NoError(t, os.WriteFile(dbFile, []byte("postgres://db-from-file\n"), 0o600))

	tests := []struct {
		name  string
		env   env
		check func(t *testing.T, l *config.Loaded)
	}{
		{
			name: "ReferenceNamesAreTrimmed",
			env:  env{"SERBERO_PRIVATE_KEY": "  env-key  ", "SERBERO_DB_PATH": " other.db ", "SERBERO_LOG": " debug "},
			check: func(t *testing.T, l *config.Loaded) {
				t.Helper()
				require.Equal(t, "env-key", l.PrivateKey.Reveal())
				require.Equal(t, "other.db", l.Config.Serbero.DBPath)
				require.Equal(t, "debug", l.Config.Serbero.LogLevel)
			},
		},
		{
			name: "EmptyAndBlankValuesAreIgnored",
			env:  env{"SERBERO_PRIVATE_KEY": "   ", "SERBERO_LOG": "", "SERBERO_TIMEOUTS_RENOTIFICATION_SECONDS": " "},
			check: func(t *testing.T, l *config.Loaded) {
				t.Helper()
				require.Equal(t, "file-key", l.PrivateKey.Reveal())
				require.Equal(t, "warn", l.Config.Serbero.LogLevel)
				require.Equal(t, int64(120), l.Config.Timeouts.RenotificationSeconds)
			},
		},
		{
			name: "GenericSectionKeyNames",
			env: env{
				"SERBERO_ESCALATION_ENABLED":                 "true",
				"SERBERO_ESCALATION_FALLBACK_TO_ALL_SOLVERS": "1",
				"SERBERO_TIMEOUTS_RENOTIFICATION_SECONDS":    "45",
				"SERBERO_MOSTRO_PUBKEY":                      "0101010101010101010101010101010101010101010101010101010101010101",
				"SERBERO_GRPC_LISTEN":                        "0.0.0.0:9000",
			},
			check: func(t *testing.T, l *config.Loaded) {
				t.Helper()
				require.True(t, l.Config.Escalation.Enabled)
				require.True(t, l.Config.Escalation.FallbackToAllSolvers)
				require.Equal(t, int64(45), l.Config.Timeouts.RenotificationSeconds)
				require.Equal(t, "0101010101010101010101010101010101010101010101010101010101010101", l.Config.Mostro.Pubkey)
				require.Equal(t, "0.0.0.0:9000", l.Config.Server.GRPCListen)
			},
		},
		{
			name: "FileVariantsForSecrets",
			env:  env{"SERBERO_PRIVATE_KEY_FILE": keyFile, "SERBERO_DATABASE_URL_FILE": dbFile},
			check: func(t *testing.T, l *config.Loaded) {
				t.Helper()
				require.Equal(t, "from-file-key", l.PrivateKey.Reveal())
				require.Equal(t, "postgres://db-from-file", l.Config.Database.URL.Reveal())
			},
		},
		{
			name: "ReasoningKeyFromNamedVariable",
			env:  env{"SERBERO_REASONING_ENABLED": "true", "MY_LLM_KEY": " sk-123 ", "SERBERO_REASONING_API_KEY_ENV": "MY_LLM_KEY"},
			check: func(t *testing.T, l *config.Loaded) {
				t.Helper()
				require.Equal(t, "sk-123", l.Config.Reasoning.APIKey.Reveal())
			},
		},
	}
	content := `
[serbero]
private_key = "file-key"
log_level = "warn"
[mostro]
pubkey = "0202020202020202020202020202020202020202020202020202020202020202"
[timeouts]
renotification_seconds = 120
`
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := load(t, content, config.TargetAll, tt.env)
			require.NoError(t, err)
			tt.check(t, l)
		})
	}
}

func TestLoadFlagOverridesWin(t *testing.T) {
	t.Parallel()

	l, err := config.Load(config.LoadOptions{
		Path:      writeFile(t, minimal+"[server]\ngrpc_listen = \"127.0.0.1:1\"\n"),
		Target:    config.TargetAuthsvc,
		Getenv:    env{"SERBERO_GRPC_LISTEN": "127.0.0.1:2"}.get,
		Overrides: map[string]string{"server.grpc_listen": "127.0.0.1:3"},
	})
	require.NoError(t, err)
	require.Equal(t, "127.0.0.1:3", l.Config.Server.GRPCListen)
}

func TestLoadUnknownKeysWarn(t *testing.T) {
	t.Parallel()

	l, err := load(t, minimal+"[escalation]\nenabeld = true\n[nonsense]\nx = 1\n[reasoning]\napi_key = \"sk-in-file\"\n", config.TargetEscalationsvc, env{})
	require.NoError(t, err)
	joined := strings.Join(l.Warnings, "\n")
	require.Contains(t, joined, `unknown config key "escalation.enabeld"`)
	require.Contains(t, joined, `unknown config key "nonsense.x"`)
	require.Contains(t, joined, "reasoning.api_key is ignored")
	require.NotContains(t, joined, "sk-in-file")
	require.False(t, l.Config.Escalation.Enabled)
	require.False(t, l.Config.Reasoning.APIKey.IsSet(), "the reasoning key never comes from the file")
}

func TestLoadKeyCustody(t *testing.T) {
	t.Parallel()

	const key = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee0001"
	content := "[serbero]\nprivate_key = \"" + key + "\"\n" + minimal

	for _, target := range []config.Target{config.TargetIntakesvc, config.TargetAuthsvc, config.TargetMediationsvc, config.TargetEscalationsvc} {
		t.Run(string(target), func(t *testing.T) {
			t.Parallel()
			l, err := load(t, content, target, env{"SERBERO_PRIVATE_KEY": key})
			require.NoError(t, err)
			require.False(t, l.PrivateKey.IsSet(), "only relaygw loads the key")
			require.Contains(t, strings.Join(l.Warnings, "\n"), "contains [serbero].private_key")
			dump := fmt.Sprintf("%+v %#v", *l, *l.Config)
			b, err := json.Marshal(l)
			require.NoError(t, err)
			require.NotContains(t, dump+string(b), key)
		})
	}

	t.Run("RelaygwRedactsInDumps", func(t *testing.T) {
		t.Parallel()
		l, err := load(t, content, config.TargetRelaygw, env{})
		require.NoError(t, err)
		require.Equal(t, key, l.PrivateKey.Reveal())
		b, err := json.Marshal(l)
		require.NoError(t, err)
		dump := fmt.Sprintf("%v %+v %#v %s", l.PrivateKey, *l, l.PrivateKey, b)
		require.NotContains(t, dump, key)
		require.Contains(t, dump, "[redacted]")
	})
}

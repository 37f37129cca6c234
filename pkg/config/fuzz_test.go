package config_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
)

// fuzzMarker is planted as [serbero].private_key in every fuzzed document.
const fuzzMarker = "f00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00dfacef00d0042"

func loadBytes(data []byte, target config.Target) (*config.Loaded, error) {
	return config.Load(config.LoadOptions{
		Path:     "fuzz.toml",
		Target:   target,
		Getenv:   func(string) string { return "" },
		ReadFile: func(string) ([]byte, error) { return append([]byte(nil), data...), nil },
	})
}

// outcome is everything a non-relaygw load exposes: the config, the
// warnings and the error text.
func outcome(l *config.Loaded, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%+v %#v %q %v", *l.Config, *l.Config, l.Warnings, l.PrivateKey)
}

// FuzzLoad: any bytes give either a Config or a *LoadError / *KeyError,
// never a panic; and the secret key never reaches a target that does not
// hold it, neither the key relaygw would read from the same bytes nor a key
// planted in front of them, whether the document parses or not.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/reference.toml", "../../config.example.toml"} {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	for _, doc := range keyForms {
		f.Add([]byte(withMostro(doc)))
	}
	for _, doc := range []string{
		"", minimal, "[mostro\npubkey = 1", "[serbero]\nprivate_key = c0ffee\n", "[serbero.private_key]\nx = 1\n",
		"serbero = 1\n", "[[serbero]]\nprivate_key = \"k\"\n", minimal + "[serbero]\nlog_level = \"serbero=off\"\n",
		minimal + "[mediation]\nsolver_auth_retry_max_attempts = 0\n", minimal + "[[relays]]\nurl = \"wss://r\"\n[[solvers]]\npubkey = \"ab\"\npermission = \"READ-write\"\n",
	} {
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := loadBytes(data, config.TargetIntakesvc)
		checkShape(t, l, err)
		if l != nil {
			require.False(t, l.PrivateKey.IsSet(), "intakesvc loaded a key")
		}
		got := outcome(l, err)

		if k, kerr := loadBytes(data, config.TargetRelaygw); kerr == nil {
			// A short key, or one whose text is also elsewhere in the
			// file, could show up legitimately.
			if key := k.PrivateKey.Reveal(); len(key) >= 16 && strings.Count(string(data), key) == 1 {
				require.NotContains(t, got, key, "intakesvc saw the key relaygw reads")
			}
		}

		if strings.Contains(string(data), fuzzMarker[8:40]) {
			return // the input itself holds the marker's text
		}
		planted := append([]byte("[serbero]\nprivate_key = \""+fuzzMarker+"\"\n"), data...)
		l, err = loadBytes(planted, config.TargetIntakesvc)
		checkShape(t, l, err)
		require.NotContains(t, outcome(l, err), fuzzMarker[8:40], "the planted key leaked")
	})
}

func checkShape(t *testing.T, l *config.Loaded, err error) {
	t.Helper()
	if err != nil {
		require.Nil(t, l)
		var le *config.LoadError
		var ke *config.KeyError
		require.True(t, errors.As(err, &le) || errors.As(err, &ke), "untyped error %T: %v", err, err)
		return
	}
	require.NotNil(t, l)
	require.NotNil(t, l.Config)
	require.Len(t, l.Config.Mostro.Pubkey, 64, "a loaded config has a normalised Mostro pubkey")
}

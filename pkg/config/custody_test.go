package config_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/config"
)

// custodyKey is a fake secret key; no dump of a non-relaygw load may
// contain it.
const custodyKey = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee0001"

// keyForms spells [serbero].private_key every way TOML allows.
var keyForms = map[string]string{
	"basic string":              "[serbero]\nprivate_key = \"" + custodyKey + "\"\nlog_level = \"warn\"\n",
	"literal string":            "[serbero]\n  private_key='" + custodyKey + "'\n",
	"multi-line basic string":   "[serbero]\nprivate_key = \"\"\"\n" + custodyKey + "\"\"\"\n",
	"multi-line basic, folded":  "[serbero]\nprivate_key = \"\"\"\\\n  " + custodyKey[:32] + "\\\n  " + custodyKey[32:] + "\"\"\"\n",
	"multi-line literal string": "[serbero]\nprivate_key = '''" + custodyKey + "'''\n",
	"escaped characters":        "[serbero]\nprivate_key = \"\\u0063" + custodyKey[1:] + "\"\n",
	"quoted key":                "[serbero]\n\"private_key\" = \"" + custodyKey + "\"\n",
	"literal quoted key":        "[serbero]\n'private_key' = \"" + custodyKey + "\"\n",
	"quoted table name":         "[\"serbero\"]\nprivate_key = \"" + custodyKey + "\"\n",
	"inline table":              "serbero = { private_key = \"" + custodyKey + "\", log_level = \"warn\" }\n",
	"inline table, quoted key":  "serbero = { \"private_key\" = '" + custodyKey + "' }\n",
	"dotted key":                "serbero.private_key = \"" + custodyKey + "\"\n",
	"dotted key with spaces":    "serbero . private_key = \"" + custodyKey + "\"\n",
	"dotted key, quoted parts":  "\"serbero\".'private_key' = \"" + custodyKey + "\"\n",
	"crlf line ends":            "[serbero]\r\nprivate_key = \"" + custodyKey + "\"\r\n",
	"comment after the value":   "[serbero]\nprivate_key = \"" + custodyKey + "\" # the key\n",
}

// withMostro appends the [mostro] table a valid file needs.
func withMostro(doc string) string { return doc + minimal }

func TestKeyCustodyEveryTOMLForm(t *testing.T) {
	t.Parallel()
	for name, doc := range keyForms {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			content := withMostro(doc)
			for _, target := range []config.Target{config.TargetIntakesvc, config.TargetAuthsvc, config.TargetMediationsvc, config.TargetEscalationsvc} {
				l, err := load(t, content, target, env{})
				require.NoError(t, err, target)
				require.False(t, l.PrivateKey.IsSet(), "%s must not load the key", target)
				joined := strings.Join(l.Warnings, "\n")
				require.Contains(t, joined, "contains [serbero].private_key, which target "+string(target)+" never reads")
				require.NotContains(t, joined, "unknown config key", "the key is known, just not read")
				b, err := json.Marshal(l)
				require.NoError(t, err)
				dump := fmt.Sprintf("%+v %#v %s", *l, *l.Config, b)
				require.NotContains(t, dump, custodyKey[1:], "%s holds the key", target)
			}
			for _, target := range []config.Target{config.TargetRelaygw, config.TargetAll} {
				l, err := load(t, content, target, env{})
				require.NoError(t, err, target)
				require.Equal(t, custodyKey, l.PrivateKey.Reveal(), "%s reads the key", target)
				require.NotContains(t, strings.Join(l.Warnings, "\n"), "private_key")
			}
		})
	}
}

func TestKeyCustodyKeepsTheRestOfTheSection(t *testing.T) {
	t.Parallel()
	for _, doc := range []string{
		"[serbero]\nprivate_key = \"" + custodyKey + "\"\nlog_level = \"warn\"\ndb_path = \"x.db\"\nlog_lvl = \"debug\"\n",
		"serbero = { private_key = \"" + custodyKey + "\", log_level = \"warn\", db_path = \"x.db\", log_lvl = \"debug\" }\n",
	} {
		l, err := load(t, withMostro(doc), config.TargetIntakesvc, env{})
		require.NoError(t, err)
		require.Equal(t, "warn", l.Config.Serbero.LogLevel)
		require.Equal(t, "x.db", l.Config.Serbero.DBPath)
		require.Contains(t, strings.Join(l.Warnings, "\n"), `unknown config key "serbero.log_lvl"`)
	}
}

func TestKeyCustodyErrorsNeverQuoteTheKey(t *testing.T) {
	t.Parallel()
	broken := map[string]string{
		"bare value":            "[serbero]\nprivate_key = " + custodyKey + "\n",
		"date-like value":       "[serbero]\nprivate_key = 1979-05-27T" + custodyKey + "\n",
		"unterminated string":   "[serbero]\nprivate_key = \"" + custodyKey + "\n",
		"bad escape":            "[serbero]\nprivate_key = \"" + custodyKey + "\\q\"\n",
		"unterminated array":    "[serbero]\nprivate_key = [\"" + custodyKey + "\", \n",
		"wrong type (relaygw)":  "[serbero]\nprivate_key = [\"" + custodyKey + "\"]\n",
		"nested table (warned)": "[serbero.private_key]\nvalue = \"" + custodyKey + "\"\n",
	}
	for name, doc := range broken {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, err := load(t, withMostro(doc), config.TargetIntakesvc, env{})
			if err == nil {
				require.NotContains(t, fmt.Sprintf("%+v %v", *l.Config, l.Warnings), custodyKey[2:])
				return
			}
			require.NotContains(t, err.Error(), custodyKey[2:], "the error quotes the key")
			require.Contains(t, err.Error(), "toml parse error")
		})
	}
	_, err := load(t, withMostro(broken["date-like value"]), config.TargetRelaygw, env{})
	require.ErrorContains(t, err, "invalid datetime", "relaygw, which reads the key, gets the parser's own message")
	_, err = load(t, withMostro(broken["wrong type (relaygw)"]), config.TargetRelaygw, env{})
	require.ErrorContains(t, err, "toml parse error: [serbero].private_key")
	require.NotContains(t, err.Error(), custodyKey[2:])
}

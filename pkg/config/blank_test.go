package config

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

func TestBlankPrivateKey(t *testing.T) {
	t.Parallel()
	const key = "c0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffeec0ffee0001"
	tests := map[string]string{
		"basic string":   "[serbero]\nprivate_key = \"" + key + "\"\nlog_level = \"info\"\n",
		"literal string": "[serbero]\n  private_key='" + key + "'\n",
		"dotted key":     "serbero.private_key = \"" + key + "\"\n[mostro]\npubkey = \"ab\"\n",
		"crlf":           "[serbero]\r\nprivate_key = \"" + key + "\"\r\n",
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data := []byte(doc)
			blankPrivateKey(data)
			if strings.Contains(string(data), "c0ffee") {
				t.Fatalf("key still present: %q", data)
			}
			var v map[string]any
			md, err := toml.Decode(string(data), &v)
			if err != nil {
				t.Fatalf("blanked document does not parse: %v", err)
			}
			if !md.IsDefined("serbero", "private_key") {
				t.Fatal("the key is no longer seen as defined (the custody warning would be lost)")
			}
		})
	}
}

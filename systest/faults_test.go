package systest_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/mostro/keys"
)

// A malformed configuration stops a service at start with exit status 1
// and an error naming the key; secrets in the file are never printed.
func TestMalformedConfigStopsWithTheKeyNamed(t *testing.T) {
	t.Parallel()
	const secretDB = "postgres://serbero:hunter2-db-password@127.0.0.1:1/serbero"
	base := fmt.Sprintf("[mostro]\npubkey = %q\n\n[database]\nurl = %q\n\n", keys.Generate().PublicKey(), secretDB)
	serberoKey := keys.Generate().RevealSecretHex()
	cases := []struct {
		name, target, config, want string
	}{
		{"negative period", intakesvc, "[timeouts]\nrenotification_seconds = -5\n",
			"[timeouts].renotification_seconds must not be negative (got -5)"},
		{"wrong type", intakesvc, "[timeouts]\nrenotification_seconds = \"soon\"\n",
			`"timeouts.renotification_seconds"`},
		{"zero dispatch interval", escalationsvc, "[escalation]\ndispatch_interval_seconds = 0\n",
			"[escalation].dispatch_interval_seconds must be a positive integer (got 0)"},
		{"negative drain", authsvc, "[server]\ndrain_seconds = -1\n",
			"[server].drain_seconds must not be negative (got -1)"},
		{"bad relay url", relaygw, fmt.Sprintf("[serbero]\nprivate_key = %q\n\n[[relays]]\nurl = \"http://relay.example\"\n", serberoKey),
			`relays[0].url "http://relay.example": scheme must be ws or wss`},
		{"no relaygw address", intakesvc, "", "[services].relaygw is required for target intakesvc (SERBERO_SERVICES_RELAYGW)"},
		{"missing key", relaygw, "", "[serbero].private_key is required for target relaygw"},
		{"bad mostro pubkey", intakesvc, "", "invalid mostro pubkey: invalid public key: not hex"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			cfg := base
			if c.name == "bad mostro pubkey" {
				cfg = fmt.Sprintf("[mostro]\npubkey = %q\n\n[database]\nurl = %q\n\n", strings.Repeat("z", 64), secretDB)
			}
			path := filepath.Join(t.TempDir(), "config.toml")
			require.NoError(t, os.WriteFile(path, []byte(cfg+c.config), 0o600))
			ctx, cancel := context.WithTimeout(context.Background(), exitWait)
			defer cancel()
			cmd := exec.CommandContext(ctx, binary, "serve", "--target="+c.target, "--config", path)
			cmd.Env = append(cleanEnv(), "SERBERO_AUTH_TOKEN=systest-token-value")
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			require.NoError(t, ctx.Err(), "%s did not stop by itself; output:\n%s", c.target, out.String())
			require.Equal(t, 1, exitCode(err), "exit status; output:\n%s", out.String())
			require.Contains(t, out.String(), c.want)
			for _, secret := range []string{"hunter2-db-password", serberoKey, "systest-token-value"} {
				require.NotContains(t, out.String(), secret)
			}
		})
	}
}

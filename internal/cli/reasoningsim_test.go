package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestReasoningSimCommand(t *testing.T) {
	t.Parallel()
	script := filepath.Join(t.TempDir(), "script.json")
	require.NoError(t, os.WriteFile(script, []byte(`{"default":{"classify":[{"kind":"fraud"}]}}`), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"devtool", "reasoning-sim", "--listen", "127.0.0.1:0", "--script", script},
			IO{Getenv: func(string) string { return "" }, Stdout: stdout, Stderr: stderr}, "test")
	}()
	re := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/v1/chat/completions`)
	require.Eventually(t, func() bool { return re.MatchString(stdout.String()) }, 10*time.Second, 20*time.Millisecond, stderr.String())
	addr := re.FindStringSubmatch(stdout.String())[1]
	body := `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"## Session metadata\ndispute_id: d-9\n\n## Output contract\n\"classification\""}],"response_format":{"type":"json_object"}}`
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Contains(t, string(got), `fraud_risk`, "the script's answer")
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("reasoning-sim did not stop")
	}

	err = Run(context.Background(), []string{"devtool", "reasoning-sim", "--script", filepath.Join(t.TempDir(), "none.json")},
		IO{Getenv: func(string) string { return "" }, Stdout: &syncBuffer{}, Stderr: &syncBuffer{}}, "test")
	require.ErrorContains(t, err, "read script")
}

package reasoningsim_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/pkg/testkit/reasoningsim"
)

type answer struct {
	status     int
	retryAfter string
	content    string
}

func post(t *testing.T, url, user string, jsonMode bool) answer {
	t.Helper()
	req := map[string]any{"model": "m", "messages": []map[string]string{{"role": "system", "content": "s"}, {"role": "user", "content": user}}}
	if jsonMode {
		req["response_format"] = map[string]string{"type": "json_object"}
	}
	b, err := json.Marshal(req)
	require.NoError(t, err)
	r, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/v1/chat/completions", strings.NewReader(string(b)))
	require.NoError(t, err)
	r.Header.Set("Authorization", "Bearer k")
	resp, err := http.DefaultClient.Do(r)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	a := answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	if resp.StatusCode == 200 {
		var env struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal(body, &env))
		a.content = env.Choices[0].Message.Content
	}
	return a
}

func classify(dispute string) string {
	return "## Session metadata\nsession_id: " + dispute + "\ndispute_id: " + dispute + "\n\n## Output contract\n\"classification\""
}

func summarize(dispute string) string {
	return "## Session metadata\ndispute_id: " + dispute + "\n\n## Output contract\nSUGGESTED_NEXT_STEP: and RATIONALE:"
}

func TestScriptPerDispute(t *testing.T) {
	t.Parallel()
	script, err := reasoningsim.ParseScript([]byte(`{
  "default": {"classify": [{"kind": "ask_clarification"}]},
  "disputes": {
    "d-ask-sum": {"classify": [{"kind": "ask_clarification", "times": 2}, {"kind": "summarize", "confidence": 0.8}], "summarize": [{"kind": "summary", "next_step": "Check it."}]},
    "d-fraud": {"classify": [{"kind": "fraud"}]},
    "d-bad": {"classify": [{"kind": "malformed"}]},
    "d-429": {"classify": [{"status": 429, "retry_after": "2"}, {"kind": "summarize"}]},
    "d-raw": {"classify": [{"content": "{\"classification\":\"unclear\"}"}]}
  }
}`))
	require.NoError(t, err)
	sim := reasoningsim.New(script)
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()

	var first map[string]any
	require.NoError(t, json.Unmarshal([]byte(post(t, srv.URL, classify("d-ask-sum"), true).content), &first))
	require.Equal(t, "ask_clarification", first["suggested_action"])
	require.Equal(t, reasoningsim.DefaultBuyerText, first["buyer_clarification"])
	require.Contains(t, post(t, srv.URL, classify("d-ask-sum"), true).content, "ask_clarification", "times: 2")
	third := post(t, srv.URL, classify("d-ask-sum"), true).content
	require.Contains(t, third, `"suggested_action":"summarize"`)
	require.Contains(t, third, `"confidence":0.8`)
	require.Contains(t, post(t, srv.URL, classify("d-ask-sum"), true).content, "summarize", "the last reply repeats")
	require.Equal(t, reasoningsim.DefaultSummary+"\nSUGGESTED_NEXT_STEP: Check it.\nRATIONALE: simulated: both parties' accounts agree",
		post(t, srv.URL, summarize("d-ask-sum"), false).content)

	require.Contains(t, post(t, srv.URL, classify("d-fraud"), true).content, `"flags":["fraud_risk"]`)
	require.NotContains(t, post(t, srv.URL, classify("d-bad"), true).content, "{")
	a := post(t, srv.URL, classify("d-429"), true)
	require.Equal(t, 429, a.status)
	require.Equal(t, "2", a.retryAfter)
	require.Contains(t, post(t, srv.URL, classify("d-429"), true).content, "summarize")
	//nolint:testifylint // scripted content is passed through byte for byte, not re-encoded: JSONEq would not see a rewrite
	require.Equal(t, `{"classification":"unclear"}`, post(t, srv.URL, classify("d-raw"), true).content)
	require.Contains(t, post(t, srv.URL, classify("d-other"), true).content, "ask_clarification", "default script")
	require.Equal(t, "pong", post(t, srv.URL, "ping", false).content)

	reqs := sim.RequestsFor("d-ask-sum", "")
	require.Len(t, reqs, 5)
	require.Equal(t, reasoningsim.OpSummarize, reqs[4].Op)
	require.Equal(t, "/v1/chat/completions", reqs[0].Path)
	require.Equal(t, "Bearer k", reqs[0].Header.Get("Authorization"))
	require.Contains(t, string(reqs[0].Body), "dispute_id: d-ask-sum")
}

func TestKeyAndDelay(t *testing.T) {
	t.Parallel()
	sim := reasoningsim.New(reasoningsim.Script{})
	sim.RequireKey("other")
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	require.Equal(t, 401, post(t, srv.URL, "ping", false).status)

	sim.RequireKey("")
	sim.ScriptDispute("slow", reasoningsim.Replies{Classify: []reasoningsim.Reply{{Delay: reasoningsim.Duration(time.Hour)}}})
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":`+string(must(json.Marshal(classify("slow"))))+`}],"response_format":{"type":"json_object"}}`))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(r)
	if err == nil {
		resp.Body.Close()
	}
	require.ErrorIs(t, err, context.DeadlineExceeded, "a slow reply holds the answer back")
}

func TestUnencodableReplyIsAnError(t *testing.T) {
	t.Parallel()
	sim := reasoningsim.New(reasoningsim.Script{})
	nan := math.NaN()
	sim.ScriptDispute("d-nan", reasoningsim.Replies{Classify: []reasoningsim.Reply{{Kind: reasoningsim.KindSummarize, Confidence: &nan}}})
	srv := httptest.NewServer(sim.Handler())
	defer srv.Close()
	a := post(t, srv.URL, classify("d-nan"), true)
	require.Equal(t, http.StatusInternalServerError, a.status, "a reply that cannot be encoded is a server error, not an empty answer")
}

func TestParseScriptStrict(t *testing.T) {
	t.Parallel()
	_, err := reasoningsim.ParseScript([]byte(`{"defaults":{}}`))
	require.ErrorContains(t, err, "unknown field")
	s, err := reasoningsim.ParseScript([]byte(`{"default":{"classify":[{"delay":"1.5s"},{"delay":2}]}}`))
	require.NoError(t, err)
	require.Equal(t, reasoningsim.Duration(1500*time.Millisecond), s.Default.Classify[0].Delay)
	require.Equal(t, reasoningsim.Duration(2*time.Second), s.Default.Classify[1].Delay)
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

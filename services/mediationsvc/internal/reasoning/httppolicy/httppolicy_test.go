package httppolicy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"github.com/stretchr/testify/require"

	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning/httppolicy"
)

type retries struct {
	mu      sync.Mutex
	reasons []string
}

func (r *retries) Retry(_ reasoning.Operation, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reasons = append(r.reasons, reason)
}

func (r *retries) Tokens(reasoning.Operation, int64, int64) {}

func (r *retries) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.reasons...)
}

// scripted answers each hit with the next status (the last repeats).
func scripted(t *testing.T, statuses []int, header map[string]string) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := int(hits.Add(1)) - 1
		st := statuses[min(n, len(statuses)-1)]
		for k, v := range header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(st)
		_, _ = w.Write([]byte(`{"error":"status body"}`))
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func get(url string) func(context.Context) (*http.Request, error) {
	return func(ctx context.Context) (*http.Request, error) {
		return http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	}
}

func fast(attempts int, obs reasoning.Observer) httppolicy.Policy {
	p := httppolicy.New(5, int64(attempts-1))
	p.InitialBackoff, p.MaxBackoff, p.Observer = time.Millisecond, 2*time.Millisecond, obs
	return p
}

func TestNew(t *testing.T) {
	t.Parallel()
	p := httppolicy.New(0, 1)
	require.Equal(t, time.Second, p.Timeout, "max(request_timeout_seconds, 1)")
	require.Equal(t, 2, p.Attempts, "followup_retry_count + 1")
	require.Equal(t, 2*time.Second+5*time.Second, p.Budget(), "two attempts and one backoff allowance")
	require.Equal(t, 1, httppolicy.New(30, -4).Attempts)
}

func TestStatusHandling(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		statuses []int
		attempts int
		wantHits int32
		wantErr  string
		reasons  []string
	}{
		{"OK", []int{200}, 3, 1, "", nil},
		{"5xxRetriedThenOK", []int{503, 500, 200}, 3, 3, "", []string{"http_5xx", "http_5xx"}},
		{"5xxExhausted", []int{502}, 2, 2, "http 502: {\"error\":\"status body\"}", []string{"http_5xx"}},
		{"408Retried", []int{408, 200}, 2, 2, "", []string{"http_408"}},
		{"429Exhausted", []int{429}, 3, 3, "http 429", []string{"http_429", "http_429"}},
		{"401NotRetried", []int{401}, 4, 1, "http 401", nil},
		{"404NotRetried", []int{404}, 4, 1, "http 404", nil},
		{"400NotRetried", []int{400, 200}, 4, 1, "http 400", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, hits := scripted(t, tt.statuses, nil)
			obs := &retries{}
			body, err := fast(tt.attempts, obs).Do(t.Context(), reasoning.OpClassify, get(srv.URL))
			require.Equal(t, tt.wantHits, hits.Load())
			require.Equal(t, tt.reasons, obs.got())
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.JSONEq(t, `{"error":"status body"}`, string(body))
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
		})
	}
}

func TestErrorBodyTruncatedAndRetryAfterShown(t *testing.T) {
	t.Parallel()
	long := make([]byte, 500)
	for i := range long {
		long[i] = 'x'
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Retry-After", "99999")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write(long)
	}))
	defer srv.Close()
	p := fast(2, nil)
	p.ErrorPrefix, p.ShowRetryAfter = "anthropic http", true
	_, err := p.Do(t.Context(), reasoning.OpHealth, get(srv.URL))
	require.EqualError(t, err, "reasoning provider unreachable: anthropic http 429: "+string(long[:200])+" (retry-after: 99999)")
}

// Retry-After is honoured: the second attempt waits for it (on the
// policy's clock), not for the shorter backoff.
func TestRetryAfterHonoured(t *testing.T) {
	t.Parallel()
	srv, hits := scripted(t, []int{429, 200}, map[string]string{"Retry-After": "3"})
	clock := clockwork.NewFakeClock()
	p := fast(2, nil)
	p.Clock = clock
	done := make(chan error, 1)
	go func() {
		_, err := p.Do(context.Background(), reasoning.OpClassify, get(srv.URL))
		done <- err
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	require.NoError(t, clock.BlockUntilContext(ctx, 1), "waiting before the second attempt")
	require.EqualValues(t, 1, hits.Load())
	clock.Advance(2900 * time.Millisecond)
	require.NoError(t, clock.BlockUntilContext(ctx, 1), "still waiting: the backoff alone (≤2 ms) would be over")
	require.EqualValues(t, 1, hits.Load())
	clock.Advance(200 * time.Millisecond)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-ctx.Done():
		t.Fatal("no second attempt after Retry-After")
	}
	require.EqualValues(t, 2, hits.Load())
}

// A Retry-After beyond the call's overall deadline ends the call at once
// with the last error instead of sleeping past it.
func TestRetryAfterBeyondBudgetGivesUp(t *testing.T) {
	t.Parallel()
	srv, hits := scripted(t, []int{503}, map[string]string{"Retry-After": "3600"})
	p := fast(3, nil)
	_, err := p.Do(t.Context(), reasoning.OpClassify, get(srv.URL))
	require.ErrorContains(t, err, "http 503")
	require.EqualValues(t, 1, hits.Load())
}

func TestAttemptTimeout(t *testing.T) {
	t.Parallel()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		<-r.Context().Done()
	}))
	defer srv.Close()
	obs := &retries{}
	p := fast(2, obs)
	p.Timeout = 150 * time.Millisecond
	// The backoff stays ~1 ms, but its allowance in the overall budget gives a
	// loaded machine room to start the second attempt in time.
	p.MaxBackoff = time.Second
	_, err := p.Do(t.Context(), reasoning.OpSummarize, get(srv.URL))
	require.Error(t, err)
	require.Equal(t, reasoning.CategoryTimeout, reasoning.CategoryOf(err))
	require.EqualValues(t, 2, hits.Load(), "a timed-out attempt is retried")
	require.Equal(t, []string{"timeout"}, obs.got())
}

func TestTransportError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	obs := &retries{}
	_, err := fast(2, obs).Do(t.Context(), reasoning.OpHealth, get(url))
	require.Equal(t, reasoning.CategoryUnreachable, reasoning.CategoryOf(err))
	require.Equal(t, []string{"transport"}, obs.got())
}

func TestOversizedBodyIsMalformed(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		chunk := make([]byte, 1<<20)
		for range 9 {
			_, _ = w.Write(chunk)
		}
	}))
	defer srv.Close()
	_, err := fast(3, nil).Do(t.Context(), reasoning.OpHealth, get(srv.URL))
	require.Equal(t, reasoning.CategoryMalformedResponse, reasoning.CategoryOf(err))
}

// Package httppolicy is the HTTP call policy every reasoning adapter
// shares: a per-attempt timeout, a bounded number of attempts, which
// failures are retried (transport errors, timeouts, 408, 429, 5xx; never
// another 4xx), and a jittered exponential backoff that honours
// Retry-After, all within the call's overall deadline. See
// docs/mediation.md#http-policy.
package httppolicy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/jonboulle/clockwork"

	"github.com/serbero/serbero/services/mediationsvc/internal/reasoning"
)

// MaxBody caps a response body; a longer one is malformed.
const MaxBody = 8 << 20

// errorBodyBytes is how much of an error response body an error keeps.
const errorBodyBytes = 200

// Policy is the call policy. The zero value is not usable: set Timeout and
// Attempts (New does).
type Policy struct {
	// Client sends the requests (nil: a plain http.Client).
	Client *http.Client
	// Clock times the backoff waits (nil: the real clock).
	Clock clockwork.Clock
	// Timeout bounds each attempt.
	Timeout time.Duration
	// Attempts is how many attempts a call may make (at least 1).
	Attempts int
	// InitialBackoff and MaxBackoff shape the backoff between attempts
	// (zero: 250 ms and 5 s); each wait is randomised by ±50% (capped at
	// MaxBackoff before randomisation), and a longer Retry-After wins.
	InitialBackoff, MaxBackoff time.Duration
	// ErrorPrefix starts the text of HTTP status errors ("http" or
	// "anthropic http").
	ErrorPrefix string
	// ShowRetryAfter appends " (retry-after: <v>)" to status errors that
	// carried the header.
	ShowRetryAfter bool
	// Observer counts retries (nil: none).
	Observer reasoning.Observer
}

// New returns the policy of the configuration: each attempt bounded by
// max(timeoutSeconds, 1) seconds, retryCount+1 attempts.
func New(timeoutSeconds, retryCount int64) Policy {
	return Policy{
		Timeout:  time.Duration(max(timeoutSeconds, 1)) * time.Second,
		Attempts: int(max(retryCount, 0)) + 1,
	}
}

// Budget is the overall deadline of one call: every attempt at its full
// timeout, plus one MaxBackoff between each two attempts. A wait
// (backoff or Retry-After) that would end past it is not made: the call
// fails with its last error instead.
func (p Policy) Budget() time.Duration {
	n := int64(max(p.Attempts, 1))
	return time.Duration(n)*p.Timeout + time.Duration(n-1)*orDefault(p.MaxBackoff, defaultMaxBackoff)

}

// Backoff defaults.
const (
	defaultInitialBackoff = 250 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second
)

// Do sends the request newReq builds (once per attempt) and returns the
// body of the first 2xx answer. Failures are *reasoning.Error:
// unreachable (transport error, HTTP status), timeout, or
// malformed_response (an oversized body). After the last attempt, or when
// the next wait would pass the overall deadline, the last error is
// returned.
func (p Policy) Do(ctx context.Context, op reasoning.Operation, newReq func(context.Context) (*http.Request, error)) ([]byte, error) {
	client := p.Client
	if client == nil {
		client = http.DefaultClient
	}
	clock := p.Clock
	if clock == nil {
		clock = clockwork.NewRealClock()
	}
	attempts := max(p.Attempts, 1)
	deadline := clock.Now().Add(p.Budget())
	ctx, cancel := context.WithDeadline(ctx, time.Now().Add(p.Budget()))
	defer cancel()

	bo := &backoff.ExponentialBackOff{
		InitialInterval:     orDefault(p.InitialBackoff, defaultInitialBackoff),
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         orDefault(p.MaxBackoff, defaultMaxBackoff),
	}
	bo.Reset()

	var last error
	for attempt := 1; ; attempt++ {
		body, retryAfter, reason, err := p.attempt(ctx, client, newReq)
		if err == nil {
			return body, nil
		}
		last = err
		if reason == "" || attempt >= attempts {
			return nil, last
		}
		wait := bo.NextBackOff()
		if retryAfter > wait {
			wait = retryAfter
		}
		if clock.Now().Add(wait).After(deadline) {
			return nil, last
		}
		if p.Observer != nil {
			p.Observer.Retry(op, reason)
		}
		t := clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, last
		case <-t.Chan():
		}
	}
}

// attempt makes one attempt. reason is the retry class of a retryable
// failure ("" when the failure must not be retried).
func (p Policy) attempt(ctx context.Context, client *http.Client, newReq func(context.Context) (*http.Request, error)) (body []byte, retryAfter time.Duration, reason string, err error) {
	actx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	req, err := newReq(actx)
	if err != nil {
		return nil, 0, "", &reasoning.Error{Category: reasoning.CategoryUnknown, Msg: "build request", Err: err}
	}
	resp, err := client.Do(req)
	if err != nil {
		if isTimeout(actx, err) {
			return nil, 0, "timeout", reasoning.Timeout(err)
		}
		return nil, 0, "transport", &reasoning.Error{Category: reasoning.CategoryUnreachable, Msg: "request failed", Err: stripURL(err)}
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		b, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
		if err != nil {
			if isTimeout(actx, err) {
				return nil, 0, "timeout", reasoning.Timeout(err)
			}
			return nil, 0, "transport", &reasoning.Error{Category: reasoning.CategoryUnreachable, Msg: "read response", Err: err}
		}
		if len(b) > MaxBody {
			return nil, 0, "", reasoning.Malformed("response body over %d bytes", MaxBody)
		}
		return b, 0, "", nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, errorBodyBytes))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	prefix := p.ErrorPrefix
	if prefix == "" {
		prefix = "http"
	}
	msg := fmt.Sprintf("%s %d: %s", prefix, resp.StatusCode, strings.ToValidUTF8(string(head), "\uFFFD"))
	ra := resp.Header.Get("Retry-After")
	if p.ShowRetryAfter && ra != "" {
		msg += " (retry-after: " + ra + ")"
	}
	e := &reasoning.Error{Category: reasoning.CategoryUnreachable, Msg: msg}
	switch {
	case resp.StatusCode == http.StatusRequestTimeout:
		return nil, 0, "http_408", e
	case resp.StatusCode == http.StatusTooManyRequests:
		return nil, parseRetryAfter(ra, time.Now()), "http_429", e
	case resp.StatusCode >= 500:
		return nil, parseRetryAfter(ra, time.Now()), "http_5xx", e
	}
	return nil, 0, "", e
}

// isTimeout reports whether an attempt failed because its time ran out.
func isTimeout(actx context.Context, err error) bool {
	if errors.Is(actx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

// stripURL drops the request URL from a transport error (it adds nothing
// and may be long).
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP
// date. Anything else, or a past date, is 0.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

package pullthrough

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/atollhq/atoll/api"
)

// Upstream rate limits. Docker Hub answers every manifest GET with
//
//	RateLimit-Limit: 100;w=21600
//	RateLimit-Remaining: 76;w=21600
//
// and, once the limit is spent, 429 TOOMANYREQUESTS (with Retry-After when
// it says when to come back). A limiter remembers that the upstream said
// stop, and until when: meanwhile no request goes to that upstream. Pulls of
// cached content are served as usual; a pull that needs the upstream waits
// when the limit lifts within MaxWait, else it is refused with 429
// TOOMANYREQUESTS, Retry-After and a message saying why, rather than
// hammering an upstream that already refused.

// DefaultMaxWait is how long a pull waits for an upstream's limit to lift
// when Upstream.MaxWait is 0.
const DefaultMaxWait = 10 * time.Second

// defaultRetryAfter is how long an upstream is left alone after it said
// its limit is spent without saying for how long.
const defaultRetryAfter = time.Minute

// limiter is one upstream's rate-limit state. The zero value is open; it
// may be used concurrently.
type limiter struct {
	host    string
	maxWait time.Duration
	m       *metrics

	mu    sync.Mutex
	until time.Time // no request before this
}

// errLimited builds the client's 429 for an upstream closed until until.
func (l *limiter) errLimited(until time.Time) error {
	secs := int(time.Until(until).Round(time.Second) / time.Second)
	secs = max(secs, 1)
	e := &api.Error{
		Status: http.StatusTooManyRequests,
		Code:   "TOOMANYREQUESTS",
		Message: fmt.Sprintf("upstream %s is rate-limiting this registry's pulls; content already cached is still served, "+
			"this needs the upstream: retry in %ds", l.host, secs),
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}},
	}
	return e
}

// admit returns nil when a request may go to the upstream now, after
// waiting up to maxWait for a limit to lift, else the client's 429.
func (l *limiter) admit(ctx context.Context) error {
	l.mu.Lock()
	until := l.until
	l.mu.Unlock()
	wait := time.Until(until)
	if wait <= 0 {
		return nil
	}
	if wait > l.maxWait {
		l.m.limitRefusals.WithLabelValues(l.host).Inc()
		return l.errLimited(until)
	}
	l.m.limitWaits.WithLabelValues(l.host).Inc()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// observe learns from an upstream answer: a 429, or a RateLimit-Remaining
// of 0, closes the upstream for Retry-After (default a minute). It returns
// the client's 429 when the answer itself is a 429.
func (l *limiter) observe(resp *http.Response) error {
	h := resp.Header
	remaining, hasRemaining := parseRemaining(h.Get("RateLimit-Remaining"))
	if resp.StatusCode != http.StatusTooManyRequests && (!hasRemaining || remaining > 0) {
		return nil
	}
	until := time.Now().Add(parseRetryAfter(h.Get("Retry-After")))
	l.close(until)
	if resp.StatusCode == http.StatusTooManyRequests {
		return l.errLimited(until)
	}
	return nil
}

// close keeps requests off the upstream until until (or later, if it is
// closed longer already).
func (l *limiter) close(until time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if until.After(l.until) {
		l.until = until
	}
}

// parseRemaining reads "76;w=21600" (Docker Hub) or "76".
func parseRemaining(v string) (int, bool) {
	if v == "" {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(v, ";", 2)[0]))
	return n, err == nil
}

// parseRetryAfter reads seconds or an HTTP date; default defaultRetryAfter.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return defaultRetryAfter
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return defaultRetryAfter
}

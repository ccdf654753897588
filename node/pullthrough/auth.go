package pullthrough

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The Docker token handshake (distribution's "Token Authentication
// Specification"): the registry answers 401 with
//
//	WWW-Authenticate: Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/alpine:pull"
//
// the client GETs realm?service=...&scope=... (with Basic credentials when
// it has some) and retries with "Authorization: Bearer <token>".

// challenge is the parameters of a Bearer WWW-Authenticate challenge.
type challenge struct {
	realm, service, scope string
}

// parseBearer finds the Bearer challenge among WWW-Authenticate values.
func parseBearer(values []string) (challenge, bool) {
	for _, v := range values {
		scheme, params, _ := strings.Cut(strings.TrimSpace(v), " ")
		if !strings.EqualFold(scheme, "Bearer") {
			continue
		}
		p := parseParams(params)
		if p["realm"] == "" {
			continue
		}
		return challenge{realm: p["realm"], service: p["service"], scope: p["scope"]}, true
	}
	return challenge{}, false
}

// parseParams parses RFC 7235 auth-params: key=token or key="quoted",
// separated by commas, which may also occur inside quotes.
func parseParams(s string) map[string]string {
	out := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " \t,")
		key, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		rest = strings.TrimLeft(rest, " \t")
		var val strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				val.WriteByte(rest[i])
			}
			s = rest[min(i+1, len(rest)):]
		} else {
			v, after, _ := strings.Cut(rest, ",")
			val.WriteString(strings.TrimSpace(v))
			s = after
		}
		out[key] = val.String()
	}
	return out
}

// tokenCache holds Bearer tokens by scope until shortly before they expire.
// The zero value is ready; it may be used concurrently.
type tokenCache struct {
	mu     sync.Mutex
	tokens map[string]cachedToken
}

type cachedToken struct {
	value   string
	expires time.Time
}

// get returns the token for scope, or "" when none is valid.
func (c *tokenCache) get(scope string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.tokens[scope]
	if !ok || !time.Now().Before(t.expires) {
		delete(c.tokens, scope)
		return ""
	}
	return t.value
}

func (c *tokenCache) put(scope, value string, ttl time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tokens == nil {
		c.tokens = map[string]cachedToken{}
	}
	c.tokens[scope] = cachedToken{value: value, expires: time.Now().Add(ttl - ttl/10)}
}

// tokenResponse is the token server's answer; access_token is the OAuth2
// spelling of token. ExpiresIn is in seconds; the spec's default is 60.
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// token asks the challenge's realm for a token and caches it under scope,
// the scope the next request for the same repository looks up.
func (r *client) token(ctx context.Context, ch challenge, scope string) (string, error) {
	realm, err := url.Parse(ch.realm)
	if err != nil || (realm.Scheme != "http" && realm.Scheme != "https") {
		return "", fmt.Errorf("upstream token realm %q: not an http(s) URL", ch.realm)
	}
	q := realm.Query()
	if ch.service != "" {
		q.Set("service", ch.service)
	}
	if ch.scope != "" {
		q.Set("scope", ch.scope)
	} else {
		q.Set("scope", scope)
	}
	realm.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", err
	}
	if r.username != "" {
		req.SetBasicAuth(r.username, r.password)
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		r.m.requests.WithLabelValues(r.host, "token", "0").Inc()
		return "", fmt.Errorf("upstream token: %w", err)
	}
	r.m.requests.WithLabelValues(r.host, "token", strconv.Itoa(resp.StatusCode)).Inc()
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", newStatusError(resp)
	}
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tr); err != nil {
		return "", fmt.Errorf("upstream token from %s: %w", realm.Redacted(), err)
	}
	tok := tr.Token
	if tok == "" {
		tok = tr.AccessToken
	}
	if tok == "" {
		return "", fmt.Errorf("upstream token from %s: no token in the answer", realm.Redacted())
	}
	if tr.ExpiresIn <= 0 {
		tr.ExpiresIn = 60
	}
	r.tokens.put(scope, tok, time.Duration(tr.ExpiresIn)*time.Second)
	return tok, nil
}

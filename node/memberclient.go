package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/atollhq/atoll/storage"
)

// memberClient is the one way this member calls another member's HTTP
// endpoints (GC, quotas and immutable tags, pull-through fetches, blob
// reads for replication): every request carries the member token
// (route.TokenHeader, derived from the cluster secret), which the other
// member checks with route.Router.Trusted. Blob reads on behalf of clients
// go through package route, which sends the same token.
type memberClient struct {
	scheme string // of every member's HTTP API
	token  string
	client *http.Client
	views  *views // nil for a member on its own
}

// url returns the base URL (scheme://host:port) of member name's HTTP
// API; false when it is not a member.
func (c *memberClient) url(name string) (string, bool) {
	if c.views == nil || c.views.load() == nil {
		return "", false
	}
	m, ok := c.views.load().members[name]
	if !ok {
		return "", false
	}
	return c.scheme + "://" + m.HTTP, true
}

// newRequest builds a request for path on member name; storage.ErrUnavailable
// when name is not a member.
func (c *memberClient) newRequest(ctx context.Context, method, name, path string, body io.Reader) (*http.Request, error) {
	base, ok := c.url(name)
	if !ok {
		return nil, fmt.Errorf("%s is not a member: %w", name, storage.ErrUnavailable)
	}
	return http.NewRequestWithContext(ctx, method, base+path, body)
}

// do sends req, built for another member, with the member token.
func (c *memberClient) do(req *http.Request) (*http.Response, error) {
	req.Header.Set(tokenHeader, c.token)
	return c.client.Do(req)
}

// ask posts req as JSON to path on member name, waiting at most timeout,
// and decodes the answer into reply (when not nil). A member that cannot
// be reached or does not answer 200 is storage.ErrUnavailable.
func (c *memberClient) ask(ctx context.Context, name, path string, timeout time.Duration, req, reply any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hr, err := c.newRequest(ctx, http.MethodPost, name, path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := c.do(hr)
	if err != nil {
		return fmt.Errorf("%w: %w", storage.ErrUnavailable, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %w", resp.Status, storage.ErrUnavailable)
	}
	if reply == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(reply); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

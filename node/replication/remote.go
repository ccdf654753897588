package replication

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// client is a rule's go-containerregistry settings for its remote.
type client struct {
	rule *rule
	once sync.Once
	tr   http.RoundTripper
	err  error
}

// transport builds the HTTP transport once: the CA file is read then.
func (c *client) transport() (http.RoundTripper, error) {
	c.once.Do(func() {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tc := &tls.Config{InsecureSkipVerify: c.rule.Remote.TLS.Insecure} //nolint:gosec // the operator asked for it
		if ca := c.rule.Remote.TLS.CA; ca != "" {
			pem, err := os.ReadFile(ca)
			if err != nil {
				c.err = fmt.Errorf("rule %s: remote.tls.ca: %w", c.rule.Name, err)
				return
			}
			pool, err := x509.SystemCertPool()
			if err != nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				c.err = fmt.Errorf("rule %s: remote.tls.ca %s: no PEM certificate", c.rule.Name, ca)
				return
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
		c.tr = tr
	})
	return c.tr, c.err
}

// options are the remote options of one call under ctx.
func (c *client) options(ctx context.Context) ([]remote.Option, error) {
	tr, err := c.transport()
	if err != nil {
		return nil, err
	}
	auth := authn.Anonymous
	if c.rule.Remote.Username != "" {
		auth = authn.FromConfig(authn.AuthConfig{Username: c.rule.Remote.Username, Password: c.rule.Remote.Password})
	}
	return []remote.Option{remote.WithContext(ctx), remote.WithAuth(auth), remote.WithTransport(tr)}, nil
}

// repo names repository repo on the remote.
func (c *client) repo(repo string) (name.Repository, error) {
	var opts []name.Option
	if c.rule.insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewRepository(c.rule.host+"/"+repo, opts...)
}

// registry names the remote registry.
func (c *client) registry() (name.Registry, error) {
	var opts []name.Option
	if c.rule.insecure {
		opts = append(opts, name.Insecure)
	}
	return name.NewRegistry(c.rule.host, opts...)
}

// remoteStatus returns the HTTP status of a remote error, or 0.
func remoteStatus(err error) int {
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode
	}
	return 0
}

// permanent reports whether retrying err cannot help: the remote refused
// the request itself (4xx other than 408 and 429).
func permanent(err error) bool {
	s := remoteStatus(err)
	return s >= 400 && s < 500 && s != http.StatusRequestTimeout && s != http.StatusTooManyRequests
}

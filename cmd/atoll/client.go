package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/node"
)

// adminFlags are the credentials of the commands that call a member's
// operator endpoints (atoll gc, atoll status, registry garbage-collect).
// In order of preference: the cluster token (--cluster-secret or
// ATOLL_CLUSTER_SECRET), -u USER with the password from standard input
// (--password-stdin) or a prompt, the Docker credential store's entry for
// the registry's host (~/.docker/config.json auths, credsStore,
// credHelpers, as docker login saved them), else none.
type adminFlags struct {
	user          string
	passwordStdin bool
	secret        string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.user, "u", "", "administrator's user name (password from --password-stdin or a prompt)")
	fs.StringVar(&f.user, "username", "", "same as -u")
	fs.BoolVar(&f.passwordStdin, "password-stdin", false, "read the password from standard input")
	fs.StringVar(&f.secret, "cluster-secret", "", "the cluster secret, when members have one (ATOLL_CLUSTER_SECRET)")
}

// client returns an HTTP client that authenticates to the member at base
// (scheme://host:port) as the flags say, and the headers to send.
func (f *adminFlags) client(ctx context.Context, base string, stdin io.Reader, stderr io.Writer) (*http.Client, http.Header, error) {
	u, err := url.Parse(base)
	if err != nil {
		return nil, nil, fmt.Errorf("address %q: %w", base, err)
	}
	inner := http.DefaultTransport.(*http.Transport).Clone()
	if loopback(u.Hostname()) {
		// Checking the member's certificate on loopback proves nothing
		// (registry garbage-collect in the container talks to itself).
		inner.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback
	}
	h := http.Header{}
	if f.secret == "" {
		f.secret = envOr("ATOLL_CLUSTER_SECRET", "")
	}
	if f.secret != "" && f.user == "" {
		h.Set("Atoll-Cluster-Token", node.HTTPToken(f.secret))
		return &http.Client{Transport: inner}, h, nil
	}
	var opts []name.Option
	if u.Scheme == "http" {
		opts = append(opts, name.Insecure)
	}
	reg, err := name.NewRegistry(u.Host, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("address %q: %w", base, err)
	}
	var cred authn.Authenticator = authn.Anonymous
	switch {
	case f.user != "":
		pass, err := f.password(stdin, stderr)
		if err != nil {
			return nil, nil, err
		}
		cred = &authn.Basic{Username: f.user, Password: pass}
	default:
		if cred, err = authn.DefaultKeychain.Resolve(reg); err != nil {
			return nil, nil, fmt.Errorf("docker credential store: %w", err)
		}
	}
	if cred == authn.Anonymous {
		return &http.Client{Transport: inner}, h, nil
	}
	t, err := transport.NewWithContext(ctx, reg, cred, inner, []string{auth.AdminScope})
	if err != nil {
		return nil, nil, fmt.Errorf("logging in to %s: %w", u.Host, err)
	}
	return &http.Client{Transport: t}, h, nil
}

// call sends method path to the member at base as the flags say and
// returns its answer, which must be 200 OK (else a statusError); the
// caller closes its body.
func (f *adminFlags) call(ctx context.Context, method, base, path string, stderr io.Writer) (*http.Response, error) {
	client, header, err := f.client(ctx, base, os.Stdin, stderr)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
	if err != nil {
		return nil, err
	}
	maps.Copy(req.Header, header)
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		return nil, fmt.Errorf("%s: %w", req.URL, statusError(resp))
	}
	return resp, nil
}

// password reads the password of -u from standard input or, on a
// terminal, a prompt.
func (f *adminFlags) password(stdin io.Reader, stderr io.Writer) (string, error) {
	if !f.passwordStdin {
		if p, ok, err := promptPassword(fmt.Sprintf("Password for %s: ", f.user), stderr); ok || err != nil {
			return p, err
		}
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password: %w", err)
	}
	if line = strings.TrimRight(line, "\r\n"); line == "" {
		return "", errors.New("empty password (use --password-stdin, or run on a terminal)")
	}
	return line, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// baseURL makes addr (host:port or a URL) a URL without a trailing slash.
func baseURL(addr string) string {
	base := strings.TrimSuffix(addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return base
}

// statusError is a refusal from the member, with its body's first line.
func statusError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	msg := strings.TrimSpace(string(body))
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		msg += " (log in: -u USER, or docker login, or --cluster-secret)"
	case http.StatusForbidden:
		msg += " (the user needs the admin action in auth.access.rules)"
	}
	return fmt.Errorf("%s: %s", resp.Status, msg)
}

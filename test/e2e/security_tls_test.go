package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TLS as users configure it: registry:2's REGISTRY_HTTP_TLS_* variables
// and http.tls.clientcas, certificates made with crypto/x509, clients
// that trust exactly those certificates.

// secCert is a certificate with its key, and both as PEM.
type secCert struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// secNewCert makes a certificate for 127.0.0.1 with the given serial,
// signed by parent (self-signed when nil). A self-signed one is also a CA,
// so a client can trust it as its own root.
func secNewCert(t *testing.T, serial int64, cn string, usage x509.ExtKeyUsage, parent *secCert) *secCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  parent == nil,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	signer, signerKey := tmpl, key
	if parent != nil {
		signer, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signerKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return &secCert{cert: cert, key: key,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})}
}

// install writes the pair to certFile and keyFile, each replaced in one
// rename, as certbot or cert-manager would.
func (c *secCert) install(t *testing.T, certFile, keyFile string) {
	t.Helper()
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, c.keyPEM}, {certFile, c.certPEM}} {
		tmp := f.path + ".new"
		if err := os.WriteFile(tmp, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.path); err != nil {
			t.Fatal(err)
		}
	}
}

// tlsPair is the pair as a client certificate.
func (c *secCert) tlsPair(t *testing.T) tls.Certificate {
	t.Helper()
	pair, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return pair
}

// secTLSClient trusts exactly roots and presents clientCert if any. Every
// request opens a new connection, so each sees the certificate served now.
func secTLSClient(roots []*secCert, clientCert *tls.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, r := range roots {
		pool.AddCert(r.cert)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if clientCert != nil {
		cfg.Certificates = []tls.Certificate{*clientCert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true, ForceAttemptHTTP2: true}
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// secStartTLSNode starts atoll serve with extra flags and environment that
// configure TLS, and waits until probe gets 200 from https://ADDR/healthz.
// It is startNodeWith for a member the harness cannot probe over plain
// HTTP; Stop and Kill work on it, Restart does not.
func secStartTLSNode(t *testing.T, dataDir string, o nodeOptions, probe *http.Client) *Node {
	t.Helper()
	n := &Node{t: t, addr: freeAddr(t), dataDir: dataDir, log: &syncBuffer{}, args: o.args, env: o.env}
	t.Cleanup(func() {
		if n.running() {
			n.Stop()
		}
		if t.Failed() {
			t.Logf("atoll log (%s):\n%s", n.addr, n.log.String())
		}
	})
	fmt.Fprintf(n.log, "=== start (TLS) %s --data %s\n", n.addr, n.dataDir)
	args := append([]string{"serve", "--config", emptyConf, "--addr", n.addr, "--data", n.dataDir}, n.args...)
	cmd := exec.Command(atollBin, args...)
	cmd.Env = append(cleanEnv(), n.env...)
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start atoll: %v", err)
	}
	n.cmd, n.exited = cmd, make(chan struct{})
	go func() { n.waitErr = cmd.Wait(); close(n.exited) }()
	pollUntil(t, 15*time.Second, "atoll answers https://"+n.addr+"/healthz", func() error {
		select {
		case <-n.exited:
			t.Fatalf("atoll exited before it was healthy: %v\n%s", n.waitErr, n.log.String())
		default:
		}
		resp, err := probe.Get("https://" + n.addr + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("healthz: %s", resp.Status)
		}
		return nil
	})
	return n
}

// secServedSerial is the serial number of the certificate a new TLS
// connection to addr is served.
func secServedSerial(hc *http.Client, addr string) (int64, error) {
	resp, err := hc.Get("https://" + addr + "/v2/")
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), nil
}

// TestSecurityTLS serves the registry over HTTPS from certificate files:
// a client trusting the certificate pushes and pulls, plain HTTP and
// clients that do not trust it get nothing, and a certificate replaced on
// disk is served without a restart.
func TestSecurityTLS(t *testing.T) {
	dir := t.TempDir()
	first := secNewCert(t, 1, "atoll first", x509.ExtKeyUsageServerAuth, nil)
	second := secNewCert(t, 2, "atoll second", x509.ExtKeyUsageServerAuth, nil)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first.install(t, certFile, keyFile)
	trusting := secTLSClient([]*secCert{first, second}, nil)
	n := secStartTLSNode(t, filepath.Join(dir, "data"), nodeOptions{env: []string{
		"REGISTRY_HTTP_TLS_CERTIFICATE=" + certFile,
		"REGISTRY_HTTP_TLS_KEY=" + keyFile,
	}}, trusting)

	if serial, err := secServedSerial(trusting, n.Addr()); err != nil || serial != 1 {
		t.Fatalf("https GET /v2/: serial %d, %v", serial, err)
	}
	if _, err := secServedSerial(secTLSClient(nil, nil), n.Addr()); err == nil {
		t.Errorf("a client not trusting the certificate got an answer")
	}
	// Plain HTTP to the TLS port gets no registry answer.
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + n.Addr() + "/v2/")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.Header.Get("Docker-Distribution-API-Version") != "" {
			t.Errorf("plain http GET /v2/ on the TLS port: %s %v", resp.Status, resp.Header)
		}
		t.Logf("plain http on the TLS port: %s", resp.Status)
	} else {
		t.Logf("plain http on the TLS port: %v", err)
	}

	img := secImage(t)
	ref := secRef(t, n.Addr(), "tls/app:v1", true)
	if err := remote.Write(ref, img, secRemote(secAnonymous, trusting.Transport)...); err != nil {
		t.Fatalf("push over https: %v", err)
	}
	if err := secPull(ref, img, secRemote(secAnonymous, trusting.Transport)); err != nil {
		t.Fatalf("pull over https: %v", err)
	}

	// Renewal: the files are replaced while the member runs.
	second.install(t, certFile, keyFile)
	took := pollUntil(t, 10*time.Second, "the replaced certificate is served", func() error {
		serial, err := secServedSerial(trusting, n.Addr())
		if err != nil || serial != 2 {
			return fmt.Errorf("serial %d, %v", serial, err)
		}
		return nil
	})
	t.Logf("replaced certificate served %v after the files were written", took.Round(time.Millisecond))
	if _, err := secServedSerial(secTLSClient([]*secCert{first}, nil), n.Addr()); err == nil {
		t.Errorf("a client trusting only the old certificate still got an answer")
	}
	if err := secPull(ref, img, secRemote(secAnonymous, trusting.Transport)); err != nil {
		t.Fatalf("pull over https after the renewal: %v", err)
	}
}

// TestSecurityTLSClientCA requires client certificates signed by the CA
// that http.tls.clientcas names: clients without one, or with one the CA
// did not sign, are refused during the handshake.
func TestSecurityTLSClientCA(t *testing.T) {
	dir := t.TempDir()
	server := secNewCert(t, 10, "atoll server", x509.ExtKeyUsageServerAuth, nil)
	ca := secNewCert(t, 20, "atoll client CA", x509.ExtKeyUsageClientAuth, nil)
	signed := secNewCert(t, 21, "ci-runner", x509.ExtKeyUsageClientAuth, ca).tlsPair(t)
	rogue := secNewCert(t, 22, "ci-runner", x509.ExtKeyUsageClientAuth, nil).tlsPair(t)
	certFile, keyFile, caFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "ca.pem")
	server.install(t, certFile, keyFile)
	if err := os.WriteFile(caFile, ca.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nhttp:\n  tls:\n    certificate: %q\n    key: %q\n    clientcas:\n      - %q\n", certFile, keyFile, caFile)
	if err := os.WriteFile(conf, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	withCert := secTLSClient([]*secCert{server}, &signed)
	n := secStartTLSNode(t, filepath.Join(dir, "data"), nodeOptions{args: []string{"--config", conf}}, withCert)

	if serial, err := secServedSerial(withCert, n.Addr()); err != nil || serial != 10 {
		t.Fatalf("GET /v2/ with a client certificate the CA signed: serial %d, %v", serial, err)
	}
	for _, c := range []struct {
		what string
		cert *tls.Certificate
	}{{"no client certificate", nil}, {"a self-signed client certificate", &rogue}, {"the server's own certificate", secPtr(server.tlsPair(t))}} {
		if _, err := secServedSerial(secTLSClient([]*secCert{server}, c.cert), n.Addr()); err == nil {
			t.Errorf("GET /v2/ with %s: answered", c.what)
		} else {
			t.Logf("with %s: %v", c.what, err)
		}
	}
	img := secImage(t)
	ref := secRef(t, n.Addr(), "mtls/app:v1", true)
	if err := remote.Write(ref, img, secRemote(secAnonymous, withCert.Transport)...); err != nil {
		t.Fatalf("push with a client certificate: %v", err)
	}
	if err := secPull(ref, img, secRemote(secAnonymous, secTLSClient([]*secCert{server}, nil).Transport)); err == nil {
		t.Errorf("pull without a client certificate succeeded")
	}
}

// TestSecurityTLSClientCAs lists two client CAs in http.tls.clientcas, as
// registry:2 allows: clients of either are accepted.
func TestSecurityTLSClientCAs(t *testing.T) {
	dir := t.TempDir()
	server := secNewCert(t, 30, "atoll server", x509.ExtKeyUsageServerAuth, nil)
	ca1 := secNewCert(t, 31, "first client CA", x509.ExtKeyUsageClientAuth, nil)
	ca2 := secNewCert(t, 32, "second client CA", x509.ExtKeyUsageClientAuth, nil)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca1File, ca2File := filepath.Join(dir, "ca1.pem"), filepath.Join(dir, "ca2.pem")
	server.install(t, certFile, keyFile)
	for _, f := range []struct {
		path string
		ca   *secCert
	}{{ca1File, ca1}, {ca2File, ca2}} {
		if err := os.WriteFile(f.path, f.ca.certPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nhttp:\n  tls:\n    certificate: %q\n    key: %q\n    clientcas:\n      - %q\n      - %q\n",
		certFile, keyFile, ca1File, ca2File)
	if err := os.WriteFile(conf, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	of1 := secNewCert(t, 33, "client of the first CA", x509.ExtKeyUsageClientAuth, ca1).tlsPair(t)
	of2 := secNewCert(t, 34, "client of the second CA", x509.ExtKeyUsageClientAuth, ca2).tlsPair(t)
	n := secStartTLSNode(t, filepath.Join(dir, "data"), nodeOptions{args: []string{"--config", conf}}, secTLSClient([]*secCert{server}, &of1))
	if _, err := secServedSerial(secTLSClient([]*secCert{server}, &of2), n.Addr()); err != nil {
		t.Errorf("client of the second listed CA refused: %v", err)
	}
}

func secPtr[T any](v T) *T { return &v }

package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testCert is a certificate, its key, and their PEM forms.
type testCert struct {
	cert    *x509.Certificate
	key     *ecdsa.PrivateKey
	certPEM []byte
	keyPEM  []byte
}

// newTestCert makes a certificate for "atoll.test", signed by parent (self
// signed when parent is nil).
func newTestCert(t *testing.T, cn string, parent *testCert, isCA bool) *testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, DNSNames: []string{"atoll.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	signer, parentCert := key, tmpl
	if parent != nil {
		signer, parentCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	return &testCert{cert, key,
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
}

// write puts the pair in dir with modification time mtime.
func (c *testCert) write(t *testing.T, dir string, mtime time.Time) (certFile, keyFile string) {
	t.Helper()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for _, f := range []struct {
		path string
		data []byte
	}{{certFile, c.certPEM}, {keyFile, c.keyPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(f.path, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startTLS serves 200 over cfg; clients must use the name atoll.test (SNI
// makes tls ask GetCertificate rather than httptest's own certificate).
func startTLS(t *testing.T, cfg *tls.Config) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	srv.TLS = cfg
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// servedCert connects with client settings cfg and returns the server's
// leaf certificate, or the error.
func servedCert(srv *httptest.Server, cfg *tls.Config) (*x509.Certificate, error) {
	cfg = cfg.Clone()
	cfg.ServerName = "atoll.test"
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), cfg)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return nil, err
	}
	// TLS 1.3 reports a refused client certificate only on first read.
	_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Write([]byte("GET / HTTP/1.1\r\nHost: atoll.test\r\n\r\n")); err != nil {
		return nil, err
	}
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		return nil, err
	}
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestCertReloader(t *testing.T) {
	dir := t.TempDir()
	first, second := newTestCert(t, "first", nil, true), newTestCert(t, "second", nil, true)
	mtime := time.Now().Add(-time.Hour)
	certFile, keyFile := first.write(t, dir, mtime)
	r, err := NewCertReloader(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Now()}
	r.now = clk.now
	cfg, err := r.TLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS12 || cfg.ClientAuth != tls.NoClientCert {
		t.Errorf("config: %+v", cfg)
	}
	srv := startTLS(t, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(first.cert)
	roots.AddCert(second.cert)
	client := &tls.Config{RootCAs: roots}
	expect := func(want string) {
		t.Helper()
		got, err := servedCert(srv, client)
		if err != nil || got.Subject.CommonName != want {
			t.Fatalf("served %v (err %v), want %s", got.Subject, err, want)
		}
	}
	expect("first")

	second.write(t, dir, mtime.Add(time.Minute))
	expect("first") // checked at most once a second
	clk.add(1100 * time.Millisecond)
	expect("second")

	// A half-written renewal keeps the last good pair and is retried.
	if err := os.WriteFile(keyFile, first.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	clk.add(2 * time.Second)
	expect("second")
	if r.Err() == nil {
		t.Error("mismatched pair reported no error")
	}
	first.write(t, dir, mtime.Add(2*time.Minute))
	clk.add(2 * time.Second)
	expect("first")
	if r.Err() != nil {
		t.Errorf("error after a good reload: %v", r.Err())
	}

	if _, err := NewCertReloader(certFile, filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing key accepted")
	}
}

func TestClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCert(t, "client CA", nil, true)
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, ca.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	server := newTestCert(t, "server", nil, true)
	r, err := NewCertReloader(server.write(t, dir, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := r.TLSConfig(caFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := startTLS(t, cfg)
	roots := x509.NewCertPool()
	roots.AddCert(server.cert)

	member, stranger := newTestCert(t, "member", ca, false), newTestCert(t, "stranger", nil, false)
	// Present the certificate whatever CAs the server names.
	present := func(c *testCert) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			p, err := tls.X509KeyPair(c.certPEM, c.keyPEM)
			return &p, err
		}
	}
	for _, tt := range []struct {
		name    string
		present func(*tls.CertificateRequestInfo) (*tls.Certificate, error)
		ok      bool
	}{
		{"no client certificate", nil, false},
		{"certificate from another CA", present(stranger), false},
		{"certificate from the CA", present(member), true},
	} {
		_, err := servedCert(srv, &tls.Config{RootCAs: roots, GetClientCertificate: tt.present})
		if (err == nil) != tt.ok {
			t.Errorf("%s: err %v", tt.name, err)
		}
	}

	if _, err := r.TLSConfig(filepath.Join(dir, "missing.pem")); err == nil {
		t.Error("missing CA file accepted")
	}
	if _, err := r.TLSConfig(r.keyFile); err == nil {
		t.Error("CA file without certificates accepted")
	}
}

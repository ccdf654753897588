package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// CertReloader serves a certificate and key pair from files, rereading
// them when either file's modification time changes (checked at most once
// a second), so a renewed certificate (certbot, cert-manager, a rotated
// Swarm secret) is served without a restart. Its methods may be called
// concurrently.
type CertReloader struct {
	certFile, keyFile string

	mu       sync.Mutex
	cert     *tls.Certificate
	certMod  time.Time
	keyMod   time.Time
	checked  time.Time
	lastErr  error // the last failed reload, kept to report once
	now      func() time.Time
	interval time.Duration
}

// NewCertReloader loads the pair; it fails if the files do not hold a
// matching certificate and key.
func NewCertReloader(certFile, keyFile string) (*CertReloader, error) {
	c := &CertReloader{certFile: certFile, keyFile: keyFile, now: time.Now, interval: time.Second}
	if err := c.reload(c.now()); err != nil {
		return nil, err
	}
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate: the current pair. When the
// files changed but no longer load (a renewal half written), it keeps
// serving the last good pair and tries again on the next check.
func (c *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if now.Sub(c.checked) >= c.interval || now.Before(c.checked) {
		c.checked = now
		certMod, keyMod, err := c.modTimes()
		if err == nil && (!certMod.Equal(c.certMod) || !keyMod.Equal(c.keyMod)) {
			err = c.reloadLocked(now)
		}
		c.lastErr = err
	}
	return c.cert, nil
}

// Err returns the error of the last reload attempt, nil when the files
// loaded (or did not change).
func (c *CertReloader) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

func (c *CertReloader) modTimes() (cert, key time.Time, err error) {
	cfi, err := os.Stat(c.certFile)
	if err != nil {
		return cert, key, fmt.Errorf("tls certificate: %w", err)
	}
	kfi, err := os.Stat(c.keyFile)
	if err != nil {
		return cert, key, fmt.Errorf("tls key: %w", err)
	}
	return cfi.ModTime(), kfi.ModTime(), nil
}

func (c *CertReloader) reload(now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reloadLocked(now)
}

func (c *CertReloader) reloadLocked(now time.Time) error {
	certMod, keyMod, err := c.modTimes()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls: %s, %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.certMod, c.keyMod, c.checked = &pair, certMod, keyMod, now
	return nil
}

// TLSConfig returns a server configuration serving the reloaded pair, TLS
// 1.2 at least. With clientCAFile set, clients must present a certificate
// that chains to one in that PEM file (mutual TLS).
func (c *CertReloader) TLSConfig(clientCAFiles ...string) (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: c.GetCertificate,
		NextProtos:     []string{"h2", "http/1.1"},
	}
	if len(clientCAFiles) == 0 {
		return cfg, nil
	}
	pool := x509.NewCertPool()
	for _, f := range clientCAFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("tls client CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("tls client CA: " + f + " holds no PEM certificate")
		}
	}
	cfg.ClientCAs = pool
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	return cfg, nil
}

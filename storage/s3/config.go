package s3

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Config is the storage.s3 section of the configuration. Keys and defaults
// follow registry:2's S3 driver, so its config.yml keeps working.
type Config struct {
	// RegionEndpoint is the S3 endpoint: a URL ("http://127.0.0.1:9000")
	// or host:port. A scheme, when given, decides Secure. Default: AWS S3
	// (s3.amazonaws.com).
	RegionEndpoint string `yaml:"regionendpoint"`
	// Bucket holds the blobs; New creates it if missing. Required.
	Bucket string `yaml:"bucket"`
	// Region of the bucket. Default "us-east-1".
	Region string `yaml:"region"`
	// AccessKey and SecretKey sign requests. Default (both empty): the
	// AWS_* / MINIO_* environment variables, ~/.aws/credentials, then the
	// instance's IAM role.
	AccessKey string `yaml:"accesskey"`
	SecretKey string `yaml:"secretkey"`
	// Secure selects HTTPS. Default true, unless RegionEndpoint has an
	// http:// scheme.
	Secure *bool `yaml:"secure"`
	// ForcePathStyle addresses the bucket as a path (host/bucket/key)
	// rather than a host name (bucket.host/key). Default false: path style
	// only where virtual hosts are unsupported (IP addresses, most non-AWS
	// endpoints).
	ForcePathStyle bool `yaml:"forcepathstyle"`
	// RootDirectory prefixes every key. Default "" (the bucket's root).
	RootDirectory string `yaml:"rootdirectory"`
	// PartSize is the size of the parts an upload is sent in: an upload
	// holds the part filling and up to four being sent. Default 16 MiB,
	// minimum 5 MiB (S3's smallest part), maximum 5 GiB.
	PartSize int64 `yaml:"chunksize"`
	// SpillDir, on local disk, holds the parts of uploads past the
	// store's memory budget for them (partbuf.go). Default: the system's
	// temporary directory; a member sets one in its data directory.
	SpillDir string `yaml:"-"`
	// Redirect makes URLFor answer presigned URLs, so blob GETs can be
	// served by a redirect to the bucket. Default false (blobs stream
	// through the registry). In the config file: storage.redirect.disable,
	// registry:2's key.
	Redirect bool `yaml:"-"`
}

const (
	minPartSize     = 5 << 20
	maxPartSize     = 5 << 30
	defaultPartSize = 16 << 20

	// Timeouts that turn an unreachable endpoint into ErrUnavailable
	// instead of a hang. Refused connections fail at once; these bound the
	// silent cases.
	dialTimeout           = 5 * time.Second
	responseHeaderTimeout = 60 * time.Second
	// maxRetries is how many times minio-go tries a request: a stopped
	// endpoint answers within about a second and a half of backoff.
	maxRetries = 3
)

func (c *Config) applyDefaults() {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.PartSize == 0 {
		c.PartSize = defaultPartSize
	}
}

func (c *Config) validate() error {
	if c.Bucket == "" {
		return errors.New("s3: bucket is required")
	}
	if c.PartSize < minPartSize || c.PartSize > maxPartSize {
		return fmt.Errorf("s3: chunksize %d outside [%d, %d]", c.PartSize, minPartSize, maxPartSize)
	}
	return nil
}

// endpoint splits RegionEndpoint into host:port and whether to use TLS.
func (c *Config) endpoint() (host string, secure bool, err error) {
	secure = c.Secure == nil || *c.Secure
	host = c.RegionEndpoint
	if host == "" {
		return "s3.amazonaws.com", secure, nil
	}
	if strings.Contains(host, "://") {
		u, err := url.Parse(host)
		if err != nil {
			return "", false, fmt.Errorf("s3: regionendpoint: %w", err)
		}
		switch u.Scheme {
		case "http":
			secure = false
		case "https":
			secure = true
		default:
			return "", false, fmt.Errorf("s3: regionendpoint %q: scheme must be http or https", host)
		}
		if strings.Trim(u.Path, "/") != "" {
			return "", false, fmt.Errorf("s3: regionendpoint %q: a path is not supported", host)
		}
		host = u.Host
	}
	return host, secure, nil
}

// newClient returns a minio-go client whose requests fail fast when the
// endpoint is unreachable.
func (c *Config) newClient() (*minio.Client, error) {
	host, secure, err := c.endpoint()
	if err != nil {
		return nil, err
	}
	creds := credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	if c.AccessKey == "" && c.SecretKey == "" {
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.EnvMinio{},
			&credentials.FileAWSCredentials{},
			&credentials.IAM{},
		})
	}
	lookup := minio.BucketLookupAuto
	if c.ForcePathStyle {
		lookup = minio.BucketLookupPath
	}
	client, err := minio.New(host, &minio.Options{
		Creds:        creds,
		Secure:       secure,
		Region:       c.Region,
		BucketLookup: lookup,
		Transport:    newTransport(),
		MaxRetries:   maxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	return client, nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:   10 * time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
		ResponseHeaderTimeout: responseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		// Blobs are compressed already; minio-go expects raw bodies.
		DisableCompression: true,
	}
}

package node

import (
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/api/auth"
	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/notify"
	"github.com/atollhq/atoll/node/policy"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/node/replication"
	"github.com/atollhq/atoll/node/scrub"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/storage/s3"
)

// Config is one member's configuration. The yaml tags name atoll's own
// sections of the config file, decoded straight into the packages' Config
// structs; a tag of "-" marks a field set from registry:2's sections (http,
// storage, catalog, proxy), which cmd/atoll maps, or not configurable.
type Config struct {
	// Addr is the registry's listen address. Default ":5000".
	Addr string `yaml:"-"`
	// DebugAddr serves /metrics and /debug/pprof when set. Default "".
	DebugAddr string `yaml:"-"`
	// DataDir holds blobs and metadata. Default "./data".
	DataDir string `yaml:"-"`
	// API tunes the registry protocol.
	API api.Config `yaml:"-"`
	// Headers are added to every registry response (registry:2's
	// http.headers, e.g. X-Content-Type-Options: nosniff).
	Headers http.Header `yaml:"-"`
	// TLS serves the registry over HTTPS when a certificate is set.
	TLS TLSConfig `yaml:"-"`
	// Auth authenticates clients and checks their access. Default: none.
	Auth auth.Config `yaml:"auth"`
	// Storage selects where blobs live: DataDir (default) or a bucket.
	Storage StorageConfig `yaml:"-"`
	// Cluster configures membership, placement and replication.
	Cluster ClusterConfig `yaml:"cluster"`
	// Notifications sends events to webhooks (registry:2's notifications).
	Notifications notify.Config `yaml:"notifications"`
	// PullThrough makes repositories caches of other registries: the
	// file's upstreams: list (its proxy: section is registry:2's).
	PullThrough pullthrough.Config `yaml:",inline"`
	// Replication mirrors repositories to and from other registries: the
	// file's replication: list.
	Replication replication.Config `yaml:",inline"`
	// JanitorInterval is how often expired uploads are purged. Default 10m.
	JanitorInterval time.Duration `yaml:"-"`
	// GC is garbage collection: its schedule (gc:) and retention policies
	// (the file's retention: list); on demand otherwise: atoll gc, POST
	// /_atoll/v1/gc.
	GC gc.Config `yaml:"gc"`
	// Quotas limit the bytes sets of repositories hold, cluster-wide.
	// Default none.
	Quotas []policy.Quota `yaml:"quotas"`
	// Immutable makes matching tags immutable once pushed. Default none.
	Immutable []policy.ImmutableRule `yaml:"immutable"`
	// ShutdownTimeout bounds the graceful drain on stop. Default 30s.
	ShutdownTimeout time.Duration `yaml:"-"`
	// ReadIdle cuts off a request body that sends nothing for this long
	// (registry:2 config: http.readidle). Default 60s.
	ReadIdle time.Duration `yaml:"-"`
	// Scrub schedules scrubs of the member's blobs (scrubhttp.go).
	Scrub scrub.Config `yaml:"-"`
	// Metadata tunes the metadata store: the file's metadata: section,
	// whose size cmd/atoll parses (metadata.cachesize: 256MiB).
	Metadata metadb.Config `yaml:"-"`
}

func (c *Config) applyDefaults() error {
	if c.Addr == "" {
		c.Addr = ":5000"
	}
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if c.JanitorInterval <= 0 {
		c.JanitorInterval = 10 * time.Minute
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 30 * time.Second
	}
	if c.ReadIdle <= 0 {
		c.ReadIdle = 60 * time.Second
	}
	if c.Storage.CacheSize <= 0 {
		c.Storage.CacheSize = 10 << 30
	}
	if c.Cluster.NodeName == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("node name: %w", err)
		}
		c.Cluster.NodeName = h
	}
	return c.Cluster.applyDefaults(c.Addr)
}

// TLSConfig is registry:2's http.tls section, decoded in place.
type TLSConfig struct {
	// Certificate and Key are PEM files, reloaded when they change.
	Certificate string `yaml:"certificate"`
	Key         string `yaml:"key"`
	// ClientCAs, when set, require client certificates signed by one of
	// these CAs (PEM files).
	ClientCAs []string `yaml:"clientcas"`
}

// StorageConfig selects where blobs live. Metadata is always in DataDir.
// cmd/atoll sets it from registry:2's storage: section.
type StorageConfig struct {
	// S3, when set, keeps blobs in an S3-compatible bucket. Members given
	// the same bucket share one copy of each blob. Default: blobs in
	// DataDir.
	S3 *s3.Config
	// CacheSize bounds the local disk cache of blobs read from the bucket,
	// in bytes. Default 10 GiB.
	CacheSize int64
	// MinFree is the free space on DataDir's filesystem below which
	// /readyz answers 503: bytes ("1GiB", "500MiB") or a share of the
	// filesystem ("5%"); "0" for none. Default 1 GiB or 5 %, whichever is
	// smaller.
	MinFree diskspace.Floor
}

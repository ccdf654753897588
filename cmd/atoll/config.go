package main

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/pullthrough"
	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/storage/s3"
)

// fileConfig is the config file: registry:2's config.yml, whose sections
// atoll reads (r2Config, mapped onto node.Config by nodeConfig), and
// atoll's own sections, decoded straight into node.Config and the
// packages' Config structs it holds (cluster, gc, quotas, immutable,
// upstreams, replication; auth and notifications are registry:2's
// sections, decoded in place too). Keys it does not know are reported as
// warnings, never errors, so an existing registry:2 file loads unchanged.
type fileConfig struct {
	r2Config `yaml:",inline"`
	Node     node.Config `yaml:",inline"`
	// Retention prunes tags and untagged manifests before collections
	// (node.Config.GC.Retention).
	Retention []gc.RetentionPolicy `yaml:"retention"`
	// Metadata is node.Config.Metadata with its size as written
	// ("256MiB").
	Metadata struct {
		CacheSize string `yaml:"cachesize"`
	} `yaml:"metadata"`
	// Scrub is node.Config.Scrub with its rate as written ("50MiB").
	Scrub struct {
		Interval time.Duration `yaml:"interval"`
		Rate     string        `yaml:"rate"`
	} `yaml:"scrub"`
}

// r2Config is the part of registry:2's config.yml that has no package
// Config of its own to decode into, with atoll's few additions (marked).
type r2Config struct {
	Version string `yaml:"version"` // accepted, not used
	Log     struct {
		Level     string `yaml:"level"`
		Formatter string `yaml:"formatter"`
	} `yaml:"log"`
	Storage struct {
		Filesystem struct {
			RootDirectory string `yaml:"rootdirectory"`
			// MinFree is atoll's free-space floor for /readyz:
			// "1GiB", "500MiB" or "5%".
			MinFree string `yaml:"minfree"`
		} `yaml:"filesystem"`
		S3       *s3.Config `yaml:"s3"`
		Redirect struct {
			Disable *bool `yaml:"disable"`
		} `yaml:"redirect"`
		Delete struct {
			Enabled *bool `yaml:"enabled"`
		} `yaml:"delete"`
		// CacheSize bounds atoll's disk cache of blobs read from S3.
		CacheSize   string `yaml:"cachesize"`
		Maintenance struct {
			UploadPurging struct {
				Enabled  *bool         `yaml:"enabled"`
				Age      time.Duration `yaml:"age"`
				Interval time.Duration `yaml:"interval"`
			} `yaml:"uploadpurging"`
			ReadOnly struct {
				Enabled bool `yaml:"enabled"`
			} `yaml:"readonly"`
		} `yaml:"maintenance"`
		Cache map[string]any `yaml:"cache"` // accepted, not needed: reads are from memory
	} `yaml:"storage"`
	// Proxy is registry:2's pull-through cache of one upstream.
	Proxy   proxyConfig `yaml:"proxy"`
	Catalog struct {
		MaxEntries int `yaml:"maxentries"`
	} `yaml:"catalog"`
	HTTP struct {
		Addr  string `yaml:"addr"`
		Debug struct {
			Addr string `yaml:"addr"`
		} `yaml:"debug"`
		Headers map[string][]string `yaml:"headers"`
		// ReadIdle cuts off a request body that sends nothing for this
		// long (atoll's).
		ReadIdle time.Duration  `yaml:"readidle"`
		TLS      node.TLSConfig `yaml:"tls"`
	} `yaml:"http"`
}

// proxyConfig is registry:2's proxy: section. Its ttl schedules the
// expiry of cached blobs in registry:2; atoll keeps cached content until
// garbage collection, so ttl is accepted and not used, and tagttl says how
// long a cached tag is trusted before the upstream is asked again (default:
// not at all, as registry:2, while the upstream answers).
type proxyConfig struct {
	RemoteURL string        `yaml:"remoteurl"`
	Username  string        `yaml:"username"`
	Password  string        `yaml:"password"`
	TTL       time.Duration `yaml:"ttl"`
	TagTTL    time.Duration `yaml:"tagttl"`
	// Library and MaxWait are atoll's: pullthrough.Upstream says what they do.
	Library *bool         `yaml:"library"`
	MaxWait time.Duration `yaml:"maxwait"`
}

// atollEnv maps ATOLL_* variables to cluster settings.
var atollEnv = map[string]func(c *node.ClusterConfig, v string) error{
	"ATOLL_NODE_NAME":      func(c *node.ClusterConfig, v string) error { c.NodeName = v; return nil },
	"ATOLL_GOSSIP_ADDR":    func(c *node.ClusterConfig, v string) error { c.GossipAddr = v; return nil },
	"ATOLL_GRPC_ADDR":      func(c *node.ClusterConfig, v string) error { c.GRPCAddr = v; return nil },
	"ATOLL_ADVERTISE_ADDR": func(c *node.ClusterConfig, v string) error { c.AdvertiseAddr = v; return nil },
	"ATOLL_JOIN":           func(c *node.ClusterConfig, v string) error { c.Join = splitList(v); return nil },
	"ATOLL_ROUTING":        func(c *node.ClusterConfig, v string) error { c.Routing = v; return nil },
	"ATOLL_CLUSTER_SECRET": func(c *node.ClusterConfig, v string) error { c.Secret = v; return nil },
	"ATOLL_REPLICAS": func(c *node.ClusterConfig, v string) (err error) {
		c.Placement.Replicas, err = strconv.Atoi(v)
		return err
	},
	"ATOLL_CLUSTER_FAST": func(c *node.ClusterConfig, v string) (err error) {
		c.Fast, err = strconv.ParseBool(v)
		return err
	},
}

// applyAtollEnv sets cluster settings from ATOLL_* variables. A variable
// ending in _FILE names a file holding the value (Docker secrets); warn
// receives variables atoll does not know.
func applyAtollEnv(c *node.ClusterConfig, environ []string, warn func(string)) error {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "ATOLL_") {
			continue
		}
		if base, ok := strings.CutSuffix(k, "_FILE"); ok && atollEnv[base] != nil {
			b, err := os.ReadFile(v)
			if err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			k, v = base, strings.TrimSpace(string(b))
		}
		set, ok := atollEnv[k]
		if !ok {
			warn(k)
			continue
		}
		if err := set(c, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// splitList splits a comma-separated list, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// loadFile reads a registry:2 config file; warn receives each unknown key.
func loadFile(path string, cfg *fileConfig, warn func(key string)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return parseFile(data, cfg, warn)
}

func parseFile(data []byte, cfg *fileConfig, warn func(key string)) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(doc.Content) == 0 {
		return nil // empty file
	}
	if err := doc.Decode(cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	unknownKeys(doc.Content[0], reflect.TypeOf(*cfg), "", warn)
	return nil
}

// unknownKeys walks a YAML mapping beside the struct type t and reports
// keys that no field declares.
func unknownKeys(n *yaml.Node, t reflect.Type, prefix string, warn func(string)) {
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key := n.Content[i].Value
		f, ok := fieldByYAML(t, key)
		if !ok {
			warn(prefix + key)
			continue
		}
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		unknownKeys(n.Content[i+1], ft, prefix+key+".", warn)
	}
}

// fieldByYAML finds the field of struct type t that decodes key, looking
// into inline fields as the decoder does.
func fieldByYAML(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if opts == "inline" && f.Type.Kind() == reflect.Struct {
			if in, ok := fieldByYAML(f.Type, key); ok {
				in.Index = append([]int{i}, in.Index...)
				return in, true
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // the decoder's default
		}
		if strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// applyEnv sets fields from REGISTRY_* variables the way registry:2 does:
// REGISTRY_HTTP_ADDR is http.addr, REGISTRY_STORAGE_DELETE_ENABLED is
// storage.delete.enabled. Variables naming no known key are reported.
func applyEnv(cfg *fileConfig, environ []string, warn func(key string)) error {
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		path, ok := strings.CutPrefix(k, "REGISTRY_")
		if !ok || path == "" || path == "CONFIGURATION_PATH" {
			continue
		}
		if path == "AUTH" { // registry:2 names the scheme; the keys under it configure it
			if v != "htpasswd" && v != "token" && v != "none" && v != "" {
				return fmt.Errorf("%s=%s: atoll has htpasswd and token", k, v)
			}
			continue
		}
		if path == "STORAGE" { // registry:2 picks the driver by name
			if err := selectDriver(cfg, v); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
			continue
		}
		f, ok := envField(reflect.ValueOf(cfg).Elem(), strings.Split(strings.ToLower(path), "_"))
		if !ok {
			warn(k)
			continue
		}
		if err := setValue(f, v); err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
	}
	return nil
}

// envField finds the field a variable's path names. Keys never contain
// underscores in registry:2's scheme, so each part is one level.
func envField(v reflect.Value, parts []string) (reflect.Value, bool) {
	for _, p := range parts {
		if v.Kind() == reflect.Pointer {
			if v.IsNil() {
				v.Set(reflect.New(v.Type().Elem()))
			}
			v = v.Elem()
		}
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		f, ok := fieldByYAML(v.Type(), p)
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.Index)
	}
	return v, v.IsValid()
}

func setValue(f reflect.Value, s string) error {
	if f.Kind() == reflect.Pointer {
		f.Set(reflect.New(f.Type().Elem()))
		f = f.Elem()
	}
	switch {
	case f.Type() == reflect.TypeOf(time.Duration(0)):
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(d))
	case f.Kind() == reflect.String:
		f.SetString(s)
	case f.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		f.SetBool(b)
	case f.Kind() == reflect.Int || f.Kind() == reflect.Int64:
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return err
		}
		f.SetInt(i)
	default:
		return fmt.Errorf("cannot be set from the environment")
	}
	return nil
}

// selectDriver handles REGISTRY_STORAGE=<driver>.
func selectDriver(cfg *fileConfig, driver string) error {
	switch driver {
	case "filesystem":
		cfg.Storage.S3 = nil
	case "s3":
		if cfg.Storage.S3 == nil {
			cfg.Storage.S3 = new(s3.Config)
		}
	default:
		return fmt.Errorf("storage driver %q: atoll has filesystem and s3", driver)
	}
	return nil
}

// nodeConfig is the member's configuration: atoll's sections as decoded,
// with registry:2's mapped onto it.
func (fc *fileConfig) nodeConfig() (node.Config, error) {
	c := fc.Node
	c.GC.Retention = fc.Retention
	if s := fc.Metadata.CacheSize; s != "" {
		size, err := diskspace.ParseSize(s)
		if err != nil {
			return c, fmt.Errorf("metadata.cachesize: %w", err)
		}
		c.Metadata.CacheSize = size
	}
	c.Scrub.Interval = fc.Scrub.Interval
	if s := fc.Scrub.Rate; s != "" {
		rate, err := diskspace.ParseSize(s)
		if err != nil {
			return c, fmt.Errorf("scrub.rate: %w", err)
		}
		c.Scrub.Rate = rate
	}
	r := &fc.r2Config
	c.Addr, c.DebugAddr, c.ReadIdle = r.HTTP.Addr, r.HTTP.Debug.Addr, r.HTTP.ReadIdle
	c.Headers, c.TLS = r.HTTP.Headers, r.HTTP.TLS
	c.DataDir = r.Storage.Filesystem.RootDirectory
	if r.Storage.S3 != nil {
		s3cfg := *r.Storage.S3
		if d := r.Storage.Redirect.Disable; d != nil && !*d {
			s3cfg.Redirect = true
		}
		c.Storage.S3 = &s3cfg
	}
	if e := r.Storage.Delete.Enabled; e != nil {
		c.API.DisableDelete = !*e
	}
	if r.Storage.Filesystem.MinFree != "" {
		floor, err := diskspace.ParseFloor(r.Storage.Filesystem.MinFree)
		if err != nil {
			return c, fmt.Errorf("storage.filesystem.minfree: %w", err)
		}
		c.Storage.MinFree = floor
	}
	if r.Storage.CacheSize != "" {
		size, err := diskspace.ParseSize(r.Storage.CacheSize)
		if err != nil {
			return c, fmt.Errorf("storage.cachesize: %w", err)
		}
		c.Storage.CacheSize = size
	}
	c.API.ReadOnly = r.Storage.Maintenance.ReadOnly.Enabled
	c.API.CatalogMaxEntries = r.Catalog.MaxEntries
	p := r.Proxy
	if p.TagTTL == 0 {
		p.TagTTL = -1 // as registry:2: ask the upstream on every pull of a tag
	}
	c.PullThrough.Proxy = pullthrough.Upstream{
		RemoteURL: p.RemoteURL, Username: p.Username, Password: p.Password, TTL: p.TagTTL,
		Library: p.Library, MaxWait: p.MaxWait,
	}
	up := r.Storage.Maintenance.UploadPurging
	if up.Enabled == nil || *up.Enabled {
		c.API.UploadTTL = up.Age
		c.JanitorInterval = up.Interval
	} else {
		c.API.UploadTTL = 100 * 365 * 24 * time.Hour
	}
	return c, nil
}

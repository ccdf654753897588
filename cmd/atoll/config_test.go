package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/atollhq/atoll/node"
)

// keyValues is a value for every key of README's configuration reference,
// as YAML, unlike the default.
var keyValues = map[string]string{
	"http.addr":                                   "':6000'",
	"http.debug.addr":                             "':6001'",
	"http.headers":                                "{X-Content-Type-Options: [nosniff]}",
	"http.readidle":                               "5s",
	"http.tls.certificate":                        "cert.pem",
	"http.tls.key":                                "key.pem",
	"http.tls.clientcas":                          "[ca.pem]",
	"log.formatter":                               "json",
	"log.level":                                   "debug",
	"storage.filesystem.rootdirectory":            "/var/lib/registry",
	"storage.filesystem.minfree":                  "2%",
	"storage.delete.enabled":                      "false",
	"storage.maintenance.uploadpurging.enabled":   "false",
	"storage.maintenance.uploadpurging.age":       "1h",
	"storage.maintenance.uploadpurging.interval":  "1m",
	"storage.maintenance.readonly.enabled":        "true",
	"storage.s3.regionendpoint":                   "http://127.0.0.1:9000",
	"storage.s3.bucket":                           "b",
	"storage.s3.region":                           "eu-west-1",
	"storage.s3.accesskey":                        "ak",
	"storage.s3.secretkey":                        "sk",
	"storage.s3.secure":                           "false",
	"storage.s3.rootdirectory":                    "/r",
	"storage.s3.chunksize":                        "10485760",
	"storage.s3.forcepathstyle":                   "true",
	"storage.redirect.disable":                    "false",
	"storage.cachesize":                           "1GiB",
	"auth.htpasswd.realm":                         "r",
	"auth.htpasswd.path":                          "/h",
	"auth.token.realm":                            "https://auth/token",
	"auth.token.service":                          "s",
	"auth.token.issuer":                           "i",
	"auth.token.rootcertbundle":                   "/c.pem",
	"auth.token.autoredirect":                     "true",
	"auth.token.autoredirectpath":                 "/t",
	"auth.builtintoken.enabled":                   "true",
	"auth.builtintoken.realm":                     "https://r/auth/token",
	"auth.builtintoken.service":                   "s",
	"auth.builtintoken.issuer":                    "i",
	"auth.builtintoken.expiry":                    "1m",
	"auth.builtintoken.keypath":                   "/k",
	"auth.access.anonymouspull":                   "true",
	"auth.access.groups":                          "{ci: [bot]}",
	"auth.access.rules":                           "[{repositories: ['*'], users: [bot], actions: [pull]}]",
	"notifications.endpoints[].name":              "n",
	"notifications.endpoints[].disabled":          "true",
	"notifications.endpoints[].url":               "http://hook",
	"notifications.endpoints[].headers":           "{A: [b]}",
	"notifications.endpoints[].timeout":           "1s",
	"notifications.endpoints[].threshold":         "3",
	"notifications.endpoints[].backoff":           "2s",
	"notifications.endpoints[].ignoredmediatypes": "[x/y]",
	"notifications.endpoints[].ignore":            "{actions: [pull]}",
	"notifications.endpoints[].mediatype":         "v2",
	"notifications.events.includereferences":      "true",
	"proxy.remoteurl":                             "https://up",
	"proxy.username":                              "u",
	"proxy.password":                              "p",
	"proxy.tagttl":                                "1m",
	"proxy.library":                               "false",
	"proxy.maxwait":                               "1s",
	"upstreams[].prefix":                          "hub/",
	"upstreams[].remoteurl":                       "https://up",
	"upstreams[].username":                        "u",
	"upstreams[].password":                        "p",
	"upstreams[].ttl":                             "1m",
	"upstreams[].library":                         "false",
	"upstreams[].maxwait":                         "1s",
	"replication[].name":                          "r",
	"replication[].remote.url":                    "https://other",
	"replication[].remote.username":               "u",
	"replication[].remote.password":               "p",
	"replication[].remote.tls.ca":                 "/ca.pem",
	"replication[].remote.tls.insecure":           "true",
	"replication[].direction":                     "pull",
	"replication[].repositories":                  "['a/*']",
	"replication[].interval":                      "1m",
	"gc.interval":                                 "1h",
	"gc.grace":                                    "2h",
	"scrub.interval":                              "168h",
	"scrub.rate":                                  "50MiB",
	"retention[].repositories":                    "['*']",
	"retention[].keeplast":                        "3",
	"retention[].keeptags":                        "[latest]",
	"retention[].untaggedafter":                   "24h",
	"quotas[].name":                               "q",
	"quotas[].repositories":                       "['team/*']",
	"quotas[].limit":                              "1GiB",
	"immutable[].repositories":                    "['*']",
	"immutable[].tags":                            "['v*']",
	"catalog.maxentries":                          "100",
	"cluster.nodename":                            "m1",
	"cluster.gossipaddr":                          "127.0.0.1:7000",
	"cluster.grpcaddr":                            "127.0.0.1:7001",
	"cluster.advertiseaddr":                       "10.0.0.1",
	"cluster.join":                                "[a, b]",
	"cluster.replicas":                            "3",
	"cluster.routing":                             "redirect",
	"cluster.secret":                              "s",
	"cluster.fast":                                "true",
	"cluster.enabled":                             "true",
	"cluster.httpaddr":                            "10.0.0.1:5000",
	"cluster.syncinterval":                        "1s",
	"cluster.writetimeout":                        "1s",
	"cluster.horizon":                             "1h",
	"cluster.rebalanceinterval":                   "1m",
	"cluster.settle":                              "1s",
	"cluster.ring.partitions":                     "101",
	"cluster.ring.load":                           "1.5",
	"cluster.probeinterval":                       "2s",
	"cluster.gossipinterval":                      "1s",
	"cluster.statsinterval":                       "2s",
	"metadata.cachesize":                          "256MiB",
	"cluster.forgetafter":                         "1h",
}

// inContext are documents without and with a key that acts only beside
// another.
var inContext = map[string][2]string{
	"storage.redirect.disable": {"storage: {s3: {bucket: b}}\n", "storage: {s3: {bucket: b}, redirect: {disable: false}}\n"},
}

// flowYAML is a document setting key ("a.b", "a[].b") to value.
func flowYAML(key, value string) string {
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		name, list := strings.CutSuffix(parts[i], "[]")
		if i < len(parts)-1 && list {
			value = "[" + value + "]"
		}
		value = "{" + name + ": " + value + "}"
	}
	return value + "\n"
}

// loaded is what a configuration decodes to.
type loaded struct {
	Node             node.Config
	Level, Formatter string
}

// decode parses a config file and maps it as serve does.
func decode(t *testing.T, yml string) loaded {
	t.Helper()
	var fc fileConfig
	if err := parseFile([]byte(yml), &fc, func(k string) { t.Errorf("%q: unknown key %s", yml, k) }); err != nil {
		t.Fatalf("%q: %v", yml, err)
	}
	return mapped(t, &fc)
}

func mapped(t *testing.T, fc *fileConfig) loaded {
	t.Helper()
	c, err := fc.nodeConfig()
	if err != nil {
		t.Fatalf("nodeConfig: %v", err)
	}
	return loaded{Node: c, Level: fc.Log.Level, Formatter: fc.Log.Formatter}
}

// TestEveryKeyDecoded: each key of the configuration reference, set in a
// config file, changes the configuration decoded.
func TestEveryKeyDecoded(t *testing.T) {
	for _, key := range documentedKeys(t) {
		v, ok := keyValues[key]
		if !ok {
			t.Errorf("no test value for documented key %s", key)
			continue
		}
		without, with := "version: 0.1\n", flowYAML(key, v)
		if docs, ok := inContext[key]; ok {
			without, with = docs[0], docs[1]
		}
		if reflect.DeepEqual(decode(t, with), decode(t, without)) {
			t.Errorf("%s: %s changes nothing", key, strings.TrimSpace(with))
		}
	}
}

// envValues is a value for every variable of the configuration
// reference; a variable documented with its value (REGISTRY_STORAGE=s3)
// takes that.
var envValues = map[string]string{
	"REGISTRY_HTTP_ADDR":                             ":6000",
	"REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY":      "/var/lib/registry",
	"REGISTRY_HTTP_DEBUG_ADDR":                       ":6001",
	"REGISTRY_LOG_FORMATTER":                         "json",
	"REGISTRY_LOG_LEVEL":                             "debug",
	"REGISTRY_HTTP_TLS_CERTIFICATE":                  "cert.pem",
	"REGISTRY_HTTP_TLS_KEY":                          "key.pem",
	"REGISTRY_STORAGE_DELETE_ENABLED":                "false",
	"REGISTRY_STORAGE_MAINTENANCE_UPLOADPURGING_AGE": "1h",
	"REGISTRY_HTTP_READIDLE":                         "5s",
	"REGISTRY_STORAGE_FILESYSTEM_MINFREE":            "2%",
	"REGISTRY_AUTH_HTPASSWD_REALM":                   "r",
	"REGISTRY_AUTH_HTPASSWD_PATH":                    "/h",
	"REGISTRY_AUTH_TOKEN_*":                          "", // one of them: REGISTRY_AUTH_TOKEN_REALM below
	"REGISTRY_AUTH_TOKEN_REALM":                      "https://auth/token",
	"REGISTRY_PROXY_REMOTEURL":                       "https://up",
	"REGISTRY_PROXY_USERNAME":                        "u",
	"REGISTRY_PROXY_PASSWORD":                        "p",
	"REGISTRY_CATALOG_MAXENTRIES":                    "100",
	"REGISTRY_STORAGE_MAINTENANCE_READONLY_ENABLED":  "true",
	"ATOLL_NODE_NAME":                                "m1",
	"ATOLL_GOSSIP_ADDR":                              "127.0.0.1:7000",
	"ATOLL_GRPC_ADDR":                                "127.0.0.1:7001",
	"ATOLL_ADVERTISE_ADDR":                           "10.0.0.1",
	"ATOLL_JOIN":                                     "a,b",
	"ATOLL_REPLICAS":                                 "3",
	"ATOLL_ROUTING":                                  "redirect",
	"ATOLL_CLUSTER_SECRET":                           "s",
	"ATOLL_CLUSTER_FAST":                             "true",
}

// TestEveryVariableDecoded: each variable of the configuration reference
// changes the configuration loadConfig returns, as serve calls it.
func TestEveryVariableDecoded(t *testing.T) {
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "REGISTRY_") || strings.HasPrefix(kv, "ATOLL_") {
			k, _, _ := strings.Cut(kv, "=")
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	load := func(t *testing.T) loaded {
		t.Helper()
		fc, warnings, err := loadConfig("")
		if err != nil || len(warnings) > 0 {
			t.Fatalf("loadConfig: %v, unknown %v", err, warnings)
		}
		return mapped(t, fc)
	}
	base := load(t)
	vars := append(documentedVariables(t), "REGISTRY_AUTH_TOKEN_REALM")
	for _, v := range vars {
		t.Run(v, func(t *testing.T) {
			k, val, preset := strings.Cut(v, "=")
			switch {
			case strings.HasSuffix(k, "*"):
				return // stands for the variables below it
			case k == "REGISTRY_CONFIGURATION_PATH":
				val = filepath.Join(t.TempDir(), "config.yml")
				if err := os.WriteFile(val, []byte("http:\n  addr: :6000\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			case k == "REGISTRY_AUTH":
				// Names the scheme the keys below it configure: accepted,
				// and any other scheme refused.
				t.Setenv(k, val)
				if _, _, err := loadConfig(""); err != nil {
					t.Fatalf("%s=%s: %v", k, val, err)
				}
				t.Setenv(k, "ldap")
				if _, _, err := loadConfig(""); err == nil {
					t.Fatalf("%s=ldap accepted", k)
				}
				return
			case !preset:
				var ok bool
				if val, ok = envValues[k]; !ok {
					t.Fatalf("no test value for documented variable %s", k)
				}
			}
			t.Setenv(k, val)
			if reflect.DeepEqual(load(t), base) {
				t.Errorf("%s=%s changes nothing", k, val)
			}
		})
	}
}

// TestFileVariableSecret: ATOLL_*_FILE reads the value from a file, as
// Docker secrets are mounted.
func TestFileVariableSecret(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var c node.ClusterConfig
	if err := applyAtollEnv(&c, []string{"ATOLL_CLUSTER_SECRET_FILE=" + path}, func(k string) { t.Errorf("unknown %s", k) }); err != nil {
		t.Fatal(err)
	}
	if c.Secret != "s3cret" {
		t.Errorf("secret %q, want the file's content", c.Secret)
	}
}

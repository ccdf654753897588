// Command atoll is a clustered container registry. One binary:
//
//	atoll serve [flags]       run a registry member (default :5000, ./data)
//	atoll healthcheck [URL]   exit 0 when the member answers /healthz
//	atoll version             print the version
//
// Run as "registry" (a link named so) it answers registry:2's command line
// (registry.go); run as "htpasswd", Apache's htpasswd -Bbn (htpasswd.go).
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/node"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := byName(context.Background(), os.Args, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(1)
	}
}

// byName runs the command line of the name the binary was run as (a link
// to it): registry:2's registry, Apache's htpasswd, or atoll's own.
func byName(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	switch filepath.Base(argv[0]) {
	case "registry":
		return registryCommand(ctx, argv[0], argv[1:], stdout, stderr)
	case "htpasswd":
		return apacheHtpasswd(os.Stdin, argv[1:], stdout, stderr)
	}
	return run(ctx, argv[1:], stdout, stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, stderr)
	case "healthcheck":
		return healthcheck(ctx, args)
	case "status":
		return status(ctx, args, stdout, stderr)
	case "htpasswd":
		return htpasswdCommand(args, stdout, stderr)
	case "gc":
		return gcCommand(ctx, args, stdout, stderr)
	case "garbage-collect":
		return garbageCollect(ctx, args, stdout, stderr)
	case "import":
		return importCommand(ctx, args, stdout, stderr)
	case "backup":
		return backupCommand(ctx, args, stdout, stderr)
	case "scrub":
		return scrubCommand(ctx, args, stdout, stderr)
	case "version", "--version", "-version":
		_, err := fmt.Fprintln(stdout, "atoll", version)
		return err
	case "help", "-h", "--help":
		_, err := fmt.Fprint(stdout, usage)
		return err
	}
	return fmt.Errorf("unknown command %q\n%s", cmd, usage)
}

const usage = `usage: atoll <command> [flags]

commands:
  serve         run a registry member (default: :5000, data in ./data)
  healthcheck   check a running member's /healthz (default http://127.0.0.1:5000)
  status        print a member's view of the cluster (--addr URL [-u USER [--password-stdin]])
  gc            collect garbage online on every member (--addr URL [--dry-run] [--grace D]
                [-u USER [--password-stdin]])
  garbage-collect  collect garbage offline, registry:2 style ([--dry-run] [-m] config.yml)
  backup        copy a running member's metadata.db to a file, checked (--addr URL [-o FILE]
                [-u USER [--password-stdin]])
  scrub         read back every blob on every member and check it against its digest;
                a bad copy is moved aside and replaced from another member
                (--addr URL [--rate 100MiB] [--local] [-u USER [--password-stdin]])
  import        adopt a registry:2 directory or bucket ([--dry-run] [--no-verify] [--data DIR] [--config FILE] [DIR])
  htpasswd      print an htpasswd line (bcrypt): atoll htpasswd USER PASSWORD
  version       print the version
`

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "registry:2 config.yml (REGISTRY_CONFIGURATION_PATH)")
	addr := fs.String("addr", "", "listen address (REGISTRY_HTTP_ADDR, http.addr; default :5000)")
	data := fs.String("data", "", "data directory (REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY; default ./data)")
	debugAddr := fs.String("debug-addr", "", "address for /metrics and pprof (http.debug.addr)")
	logFormat := fs.String("log-format", "", "text or json (log.formatter)")
	gcInterval := fs.Duration("gc-interval", 0, "collect garbage on this schedule (default: only on demand)")
	scrubInterval := fs.Duration("scrub-interval", 0, "scrub the member's blobs on this schedule (scrub.interval; default: only on demand)")
	cacheSize := fs.String("cache-size", "", "disk cache for blobs kept in S3, e.g. 20GiB (storage.cachesize; default 10GiB)")
	importFrom := fs.String("import-from", "", "import this registry:2 directory before serving (default: the data directory or the S3 bucket, when it holds registry:2's layout)")
	noVerify := fs.Bool("import-no-verify", false, "import registry:2 blobs without hashing them, then verify them in the background while serving")
	var cf clusterFlags
	cf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 1 && *configPath == "" {
		*configPath = fs.Arg(0) // registry:2 style: serve config.yml
	}
	fc, warnings, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	if err := cf.apply(&fc.Node.Cluster); err != nil {
		return err
	}
	setIf(&fc.HTTP.Addr, *addr)
	setIf(&fc.Storage.Filesystem.RootDirectory, *data)
	setIf(&fc.HTTP.Debug.Addr, *debugAddr)
	setIf(&fc.Log.Formatter, *logFormat)

	log := newLogger(stderr, fc.Log.Formatter, fc.Log.Level)
	for _, k := range warnings {
		log.Warn("ignoring unknown configuration key", "key", k)
	}
	setIf(&fc.Storage.CacheSize, *cacheSize)
	cfg, err := fc.nodeConfig()
	if err != nil {
		return err
	}
	if *gcInterval > 0 {
		cfg.GC.Interval = *gcInterval
	}
	if *scrubInterval > 0 {
		cfg.Scrub.Interval = *scrubInterval
	}
	n, err := node.New(cfg, log)
	if err != nil {
		return err
	}
	defer n.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := importBeforeServing(ctx, n, *importFrom, *noVerify, log); err != nil {
		return err
	}
	return n.Run(ctx)
}

// loadConfig reads the registry:2 config file at path (or
// REGISTRY_CONFIGURATION_PATH), then REGISTRY_* and ATOLL_* variables. It
// returns the keys it did not know.
func loadConfig(path string) (*fileConfig, []string, error) {
	var warnings []string
	warn := func(k string) { warnings = append(warnings, k) }
	fc := new(fileConfig)
	if path == "" {
		path = os.Getenv("REGISTRY_CONFIGURATION_PATH")
	}
	if path != "" {
		if err := loadFile(path, fc, warn); err != nil {
			return nil, nil, err
		}
	}
	if err := applyEnv(fc, os.Environ(), warn); err != nil {
		return nil, nil, err
	}
	if err := applyAtollEnv(&fc.Node.Cluster, os.Environ(), warn); err != nil {
		return nil, nil, err
	}
	return fc, warnings, nil
}

func setIf(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

func newLogger(w io.Writer, format, level string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// healthcheck exits non-zero unless the member at the URL answers /healthz;
// the container image's HEALTHCHECK runs it, as a scratch image has no
// curl. The default URL follows REGISTRY_HTTP_ADDR and, with
// REGISTRY_HTTP_TLS_CERTIFICATE set, uses https without verifying the
// certificate (the member checks itself on loopback).
func healthcheck(ctx context.Context, args []string) error {
	url := defaultHealthURL()
	if len(args) > 0 {
		url = args[0]
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(url, "/")+"/healthz", nil)
	if err != nil {
		return err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback self-check
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("unhealthy: " + resp.Status)
	}
	return nil
}

func defaultHealthURL() string {
	scheme := "http"
	if os.Getenv("REGISTRY_HTTP_TLS_CERTIFICATE") != "" {
		scheme = "https"
	}
	port := "5000"
	if _, p, err := net.SplitHostPort(os.Getenv("REGISTRY_HTTP_ADDR")); err == nil && p != "" {
		port = p
	}
	return scheme + "://127.0.0.1:" + port
}

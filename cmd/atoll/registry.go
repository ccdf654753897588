package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/atollhq/atoll/node/gc"
)

// registry:2's command line. The image links /bin/registry (and
// /bin/htpasswd) to the atoll binary, which answers by the name it was
// run as (main), so the commands of every registry:2 guide work unchanged:
//
//	registry serve CONFIG
//	registry CONFIG                        (the image's entry point, as registry:2's)
//	registry garbage-collect [--dry-run] [--delete-untagged] CONFIG
//	registry --version
//
// Any other command is atoll's (serve flags, gc, status, healthcheck...).

func registryCommand(ctx context.Context, self string, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		_, err := fmt.Fprint(stdout, registryUsage)
		return err
	}
	switch cmd := args[0]; {
	case cmd == "serve":
		return serve(ctx, args[1:], stderr)
	case strings.HasSuffix(cmd, ".yml") || strings.HasSuffix(cmd, ".yaml"):
		return serve(ctx, args, stderr)
	case cmd == "garbage-collect":
		return registryGC(ctx, args[1:], stdout, stderr)
	case cmd == "--version" || cmd == "-v" || cmd == "version":
		_, err := fmt.Fprintf(stdout, "%s github.com/atollhq/atoll %s\n", filepath.Base(self), version)
		return err
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		_, err := fmt.Fprint(stdout, registryUsage)
		return err
	}
	return run(ctx, args, stdout, stderr)
}

const registryUsage = `registry (atoll), registry:2's command line

usage:
  registry serve CONFIG            run the registry (atoll serve)
  registry garbage-collect [--dry-run] [--delete-untagged] CONFIG
                                   collect garbage: online when the registry at
                                   the config's http.addr runs, offline otherwise
  registry --version               print the version

Every atoll command works too: registry gc, registry status, registry import ...
`

// registryGC is registry:2's garbage-collect. When the registry the config
// describes answers on its http.addr, the collection runs online there
// (every member, no grace period: the GC fence keeps pushes safe), with the
// credentials of adminFlags; otherwise it runs offline on the storage.
func registryGC(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("garbage-collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var dryRun, untagged, quiet bool
	for _, n := range []string{"dry-run", "d"} {
		fs.BoolVar(&dryRun, n, false, "report what would be freed, free nothing")
	}
	for _, n := range []string{"delete-untagged", "m"} {
		fs.BoolVar(&untagged, n, false, "also delete manifests no tag points at (offline only)")
	}
	for _, n := range []string{"quiet", "q"} {
		fs.BoolVar(&quiet, n, false, "accepted for registry:2 compatibility")
	}
	grace := fs.Duration("grace", 0, "spare blobs younger than this")
	var af adminFlags
	af.register(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("garbage-collect: want one argument, the config file (registry garbage-collect [--dry-run] CONFIG)")
	}
	fc, _, err := loadConfig(pos[0])
	if err != nil {
		return err
	}
	base := localURL(fc.HTTP.Addr, fc.HTTP.TLS.Certificate != "")
	if running(ctx, base) {
		if untagged {
			return errors.New("garbage-collect --delete-untagged: the registry is running; stop it first, or set a retention policy with untaggedafter")
		}
		return onlineGC(ctx, base, &af, gc.Options{DryRun: dryRun, Grace: *grace}, stdout, stderr)
	}
	fmt.Fprintf(stderr, "no registry answers at %s: collecting offline\n", base)
	return offlineGC(ctx, fc, gc.Options{DryRun: dryRun, Grace: *grace}, untagged, stdout, stderr)
}

// parseInterspersed parses flags wherever they are among the positional
// arguments (registry:2 accepts `garbage-collect config.yml --dry-run`).
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// localURL is the URL on loopback of a registry listening on addr.
func localURL(addr string, tls bool) string {
	scheme := "http"
	if tls {
		scheme = "https"
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		port = "5000"
	}
	return scheme + "://127.0.0.1:" + port
}

// running reports whether a registry answers /healthz at base.
func running(ctx context.Context, base string) bool {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // loopback probe
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/atollhq/atoll/node"
	"github.com/atollhq/atoll/node/gc"
)

// gcCommand asks a running member to collect garbage on every live member and
// prints a line per member as each finishes.
func gcCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:5000", "URL of any member")
	dryRun := fs.Bool("dry-run", false, "report what would be freed, free nothing")
	grace := fs.Duration("grace", gc.DefaultGrace, "spare blobs younger than this")
	var af adminFlags
	af.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	return onlineGC(ctx, baseURL(*addr), &af, gc.Options{DryRun: *dryRun, Grace: *grace}, stdout, stderr)
}

// onlineGC runs POST /_atoll/v1/gc on the member at base and prints each
// member's report as it arrives.
func onlineGC(ctx context.Context, base string, af *adminFlags, opts gc.Options, stdout, stderr io.Writer) error {
	q := url.Values{"dry-run": {fmt.Sprint(opts.DryRun)}, "grace": {opts.Grace.String()}}
	start := time.Now()
	fmt.Fprintf(stdout, "collecting garbage on %s (dry run: %v, grace %s) ...\n", base, opts.DryRun, opts.Grace)
	resp, err := af.call(ctx, http.MethodPost, base, "/_atoll/v1/gc?"+q.Encode(), stderr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	var total gc.Report
	var failed []string
	for {
		var r gc.Report
		if err := dec.Decode(&r); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("reading reports: %w", err)
		}
		if r.Error != "" {
			failed = append(failed, r.Member)
			fmt.Fprintf(stdout, "  %-20s failed: %s\n", r.Member, r.Error)
			continue
		}
		printReport(stdout, "  "+r.Member, r)
		total.Held, total.Freed, total.Bytes = total.Held+r.Held, total.Freed+r.Freed, total.Bytes+r.Bytes
		total.Young, total.Spared = total.Young+r.Young, total.Spared+r.Spared
		total.Tags, total.Manifests = max(total.Tags, r.Tags), max(total.Manifests, r.Manifests)
	}
	total.Duration, total.DryRun = time.Since(start), opts.DryRun
	printReport(stdout, "total", total)
	if len(failed) > 0 {
		return fmt.Errorf("garbage collection failed on %s", strings.Join(failed, ", "))
	}
	return nil
}

// garbageCollect is registry:2's offline form: the registry is stopped and
// the collection runs on its storage directly, with no grace period.
func garbageCollect(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("garbage-collect", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dryRun := fs.Bool("dry-run", false, "report what would be freed, free nothing")
	fs.BoolVar(dryRun, "d", false, "short for --dry-run")
	untagged := fs.Bool("delete-untagged", false, "also delete manifests no tag points at")
	fs.BoolVar(untagged, "m", false, "short for --delete-untagged")
	grace := fs.Duration("grace", 0, "spare blobs younger than this")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return errors.New("garbage-collect: want at most one argument, the config file")
	}
	fc, _, err := loadConfig(strings.Join(pos, ""))
	if err != nil {
		return err
	}
	return offlineGC(ctx, fc, gc.Options{DryRun: *dryRun, Grace: *grace}, *untagged, stdout, stderr)
}

// offlineGC collects garbage on the storage fc names, with the registry
// stopped (its metadata database is locked while it runs). With untagged,
// manifests no tag reaches are deleted first, as registry:2's
// --delete-untagged does.
func offlineGC(ctx context.Context, fc *fileConfig, opts gc.Options, untagged bool, stdout, stderr io.Writer) error {
	cfg, err := fc.nodeConfig()
	if err != nil {
		return err
	}
	cfg.Cluster.Enabled, cfg.Cluster.Join, cfg.Cluster.GossipAddr = false, nil, ""
	if untagged {
		// Every repository: retention patterns match per segment.
		all := []string{"*"}
		for i := 1; i < 16; i++ {
			all = append(all, all[i-1]+"/*")
		}
		cfg.GC.Retention = []gc.RetentionPolicy{{Repositories: all, UntaggedAfter: time.Nanosecond}}
	}
	n, err := node.New(cfg, newLogger(stderr, fc.Log.Formatter, "warn"))
	if err != nil {
		return err
	}
	defer n.Close()
	r, err := n.CollectGarbage(ctx, opts)
	if err != nil {
		return err
	}
	printReport(stdout, r.Member, r)
	return nil
}

func printReport(w io.Writer, label string, r gc.Report) {
	verb := "freed"
	if r.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(w, "%-22s %s %d of %d blobs (%s), %d in grace period, %d in use by pushes, %s",
		label, verb, r.Freed, r.Held, humanBytes(r.Bytes), r.Young, r.Spared, r.Duration.Round(time.Millisecond))
	if r.Tags+r.Manifests > 0 {
		fmt.Fprintf(w, "; retention pruned %d tags, %d untagged manifests", r.Tags, r.Manifests)
	}
	fmt.Fprintln(w)
}

func envOr(key, def string) string {
	if v, ok := os.LookupEnv(key); ok {
		return v
	}
	return def
}

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
)

// gc asks a running member to collect garbage on every live member and
// prints a line per member as each finishes.
func gc(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("gc", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "http://127.0.0.1:5000", "URL of any member")
	dryRun := fs.Bool("dry-run", false, "report what would be freed, free nothing")
	grace := fs.Duration("grace", node.DefaultGCGrace, "spare blobs younger than this")
	secret := fs.String("cluster-secret", "", "the cluster secret, when members have one (ATOLL_CLUSTER_SECRET)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	base := strings.TrimSuffix(*addr, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	q := url.Values{"dry-run": {fmt.Sprint(*dryRun)}, "grace": {grace.String()}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/_atoll/v1/gc?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	if *secret == "" {
		*secret = envOr("ATOLL_CLUSTER_SECRET", "")
	}
	if *secret != "" {
		req.Header.Set("Atoll-Cluster-Token", node.HTTPToken(*secret))
	}
	start := time.Now()
	fmt.Fprintf(stdout, "collecting garbage (dry run: %v, grace %s) ...\n", *dryRun, *grace)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	dec := json.NewDecoder(resp.Body)
	var total node.GCReport
	var failed []string
	for {
		var r node.GCReport
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
		total.Held, total.Freed, total.Bytes, total.Young = total.Held+r.Held, total.Freed+r.Freed, total.Bytes+r.Bytes, total.Young+r.Young
		total.Tags, total.Manifests = max(total.Tags, r.Tags), max(total.Manifests, r.Manifests)
	}
	total.Duration, total.DryRun = time.Since(start), *dryRun
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
	grace := fs.Duration("grace", 0, "spare blobs younger than this")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path := fs.Arg(0)
	fc, _, err := loadConfig(path)
	if err != nil {
		return err
	}
	cfg, err := fc.nodeConfig()
	if err != nil {
		return err
	}
	cfg.Cluster.Enabled, cfg.Cluster.Join, cfg.Cluster.GossipAddr = false, nil, ""
	n, err := node.New(cfg, newLogger(stderr, fc.Log.Formatter, "warn"))
	if err != nil {
		return err
	}
	defer n.Close()
	r, err := n.CollectGarbage(ctx, node.GCOptions{DryRun: *dryRun, Grace: *grace})
	if err != nil {
		return err
	}
	printReport(stdout, r.Member, r)
	return nil
}

func printReport(w io.Writer, label string, r node.GCReport) {
	verb := "freed"
	if r.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(w, "%-22s %s %d of %d blobs (%s), %d in grace period, %s",
		label, verb, r.Freed, r.Held, humanBytes(r.Bytes), r.Young, r.Duration.Round(time.Millisecond))
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

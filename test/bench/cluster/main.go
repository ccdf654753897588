// Command cluster benchmarks atoll's cluster against atoll on its own.
//
// It starts, on free loopback ports with their own temporary data dirs:
// a single node, two 3-member clusters with one replica (routing proxy and
// routing redirect) and a 3-member cluster with two replicas (proxy). Then
// it runs every scenario in rounds, alternating the order of the variants
// from round to round, and prints medians and ratios:
//
//   - pull: a blob through an owner vs through a non-owner (proxy, redirect),
//     and through bare TCP relays to the owner (relay.go): the best a
//     one-hop proxy does on this machine, measured in the same run;
//   - push: a monolithic push to a single node vs to 3 members with R=2;
//   - pullers: many concurrent pullers over 3 members vs one single node;
//   - finalize: the final PUT of a chunked upload of a 1 GiB blob streamed
//     from a file, on a single node and through an owner and the non-owner
//     of 3 members with R=2, in seconds;
//   - conns: connections the non-owner opens to the owners for 200 GETs.
//
// Numbers are reported, never asserted: the run fails only when a process
// does not start or a request, a placement or a digest check fails.
//
// Usually invoked through test/bench/cluster/run.sh (make bench-cluster):
//
//	go run ./test/bench/cluster -atoll-bin bin/atoll -rounds 3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

type config struct {
	atollBin     string
	workdir      string
	scenarios    string
	rounds       int
	sizeMiB      int
	finalizeMiB  int
	pullers      int
	blobs        int
	blobMiB      int
	duration     time.Duration
	startTimeout time.Duration
	keep         bool
	relay        string // run as the pull scenario's bare relay (relay.go)
	relayMode    string
}

var scenarioNames = []string{"pull", "push", "pullers", "finalize", "conns"}

func parseFlags() config {
	var c config
	flag.StringVar(&c.atollBin, "atoll-bin", "bin/atoll", "path to the atoll binary")
	flag.StringVar(&c.workdir, "workdir", "", "parent of the temp dir (default: system temp dir)")
	flag.StringVar(&c.scenarios, "scenarios", strings.Join(scenarioNames, ","), "comma-separated scenarios to run")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds per scenario (medians are reported)")
	flag.IntVar(&c.sizeMiB, "size-mib", 256, "blob size for the push and pull scenarios, MiB")
	flag.IntVar(&c.finalizeMiB, "finalize-mib", 1024, "blob size for the finalize scenario, MiB")
	flag.IntVar(&c.pullers, "pullers", 16, "concurrent pullers")
	flag.IntVar(&c.blobs, "pullers-blobs", 8, "distinct blobs the pullers fetch")
	flag.IntVar(&c.blobMiB, "pullers-blob-mib", 16, "size of each pullers blob, MiB")
	flag.DurationVar(&c.duration, "duration", 8*time.Second, "pullers duration per round and variant")
	flag.DurationVar(&c.startTimeout, "start-timeout", 30*time.Second, "how long to wait for a member to start and a cluster to form")
	flag.BoolVar(&c.keep, "keep", false, "keep the temp dir (data, logs)")
	flag.StringVar(&c.relay, "relay", "", "internal: run as a bare relay of listen=target,... (the pull scenario starts it)")
	flag.StringVar(&c.relayMode, "relay-mode", relayCopy, "internal: the bare relay's mode, splice or copy")
	flag.Parse()
	return c
}

func (c config) validate() error {
	switch {
	case c.rounds < 1:
		return errors.New("-rounds must be >= 1")
	case c.sizeMiB < 1 || c.blobMiB < 1:
		return errors.New("-size-mib and -pullers-blob-mib must be >= 1")
	case c.pullers < 1 || c.blobs < 1:
		return errors.New("-pullers and -pullers-blobs must be >= 1")
	case c.duration < time.Second:
		return errors.New("-duration must be >= 1s")
	}
	return benchkit.CheckScenarios(benchkit.SplitList(c.scenarios), scenarioNames)
}

func (c config) has(s string) bool { return slices.Contains(benchkit.SplitList(c.scenarios), s) }

func main() {
	cfg := parseFlags()
	if cfg.relay != "" {
		if err := runRelay(cfg.relay, cfg.relayMode); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	benchkit.Main("bench-cluster", func(ctx context.Context) error { return run(ctx, cfg) })
}

func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cfg.workdir, "atoll-bench-cluster-")
	if err != nil {
		return err
	}
	var started []*cluster
	defer func() {
		for _, c := range started {
			c.stop(err != nil && ctx.Err() == nil) // log tails, unless interrupted
		}
		benchkit.RemoveTemp(dir, cfg.keep)
	}()
	// start registers the cluster for cleanup before its first process runs.
	start := func(label string, n, replicas int, routing string) (*cluster, error) {
		c := &cluster{label: label, replicas: replicas, routing: routing}
		started = append(started, c)
		if err := c.start(ctx, cfg, dir, n); err != nil {
			return nil, fmt.Errorf("%s: %w", label, err)
		}
		benchkit.Logf("%s: ready (%d member(s), replicas %d, routing %s)", label, n, replicas, routing)
		return c, nil
	}

	load0 := benchkit.Loadavg()
	b, err := newBench(cfg)
	if err != nil {
		return err
	}
	defer b.close()
	if cfg.has("push") || cfg.has("pullers") || cfg.has("finalize") {
		if b.single, err = start("single", 1, 1, "-"); err != nil {
			return err
		}
	}
	if cfg.has("pull") {
		if b.r1proxy, err = start("r1-proxy", 3, 1, "proxy"); err != nil {
			return err
		}
		if b.r1redirect, err = start("r1-redirect", 3, 1, "redirect"); err != nil {
			return err
		}
	}
	if b.r2, err = start("r2-proxy", 3, 2, "proxy"); err != nil {
		return err
	}
	if cfg.has("pullers") {
		if err := b.setupPullers(ctx); err != nil {
			return err
		}
	}

	runners := map[string]func(context.Context, int) error{
		"pull": b.runPull, "push": b.runPush, "pullers": b.runPullers,
		"finalize": b.runFinalize, "conns": b.runConns,
	}
	if err := benchkit.Rounds(ctx, cfg.rounds, benchkit.SplitList(cfg.scenarios), runners); err != nil {
		return err
	}
	printReport(os.Stdout, cfg, b.res, load0)
	return nil
}

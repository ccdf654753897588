// Command bench compares atoll against CNCF Distribution on the same machine.
//
// It starts both registries on free loopback ports with their own temporary
// data directories, measures the machine's references (fsync'd sequential
// write speed, Go's SHA-256 speed), runs every scenario in alternating
// rounds (atoll, distribution, atoll, distribution, ...) with a 1 GiB blob
// streamed from a file, and prints each median with its spread (min-max)
// and the ratios atoll/distribution and atoll/reference. The machine may be
// shared: quote medians and ratios. Numbers are reported, never asserted:
// the run only fails when a registry does not start or a request fails.
//
// Usually invoked through test/bench/run.sh (make bench), or directly:
//
//	go run ./test/bench -atoll-bin bin/atoll -distribution-bin /usr/bin/docker-registry
//	go run ./test/bench -only=distribution -rounds 1 -duration 3s
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

const (
	nameAtoll        = "atoll"
	nameDistribution = "distribution"
	nameReference    = "reference" // the machine, measured without a registry
)

type config struct {
	atollBin     string
	distBin      string
	wrkBin       string
	only         string
	scenarios    string
	workdir      string
	rounds       int
	sizeMiB      int
	chunkMiB     int
	threads      int
	connections  int
	duration     time.Duration
	startTimeout time.Duration
	keep         bool
}

func parseFlags() config {
	var c config
	flag.StringVar(&c.atollBin, "atoll-bin", "", "path to the atoll binary (empty: run distribution only)")
	flag.StringVar(&c.distBin, "distribution-bin", "docker-registry", "path to CNCF Distribution (Debian docker-registry)")
	flag.StringVar(&c.wrkBin, "wrk-bin", "wrk", "path to wrk")
	flag.StringVar(&c.only, "only", "", "run a single registry: atoll or distribution")
	flag.StringVar(&c.scenarios, "scenarios", strings.Join(defaultScenarioKeys(), ","), "comma-separated scenarios to run")
	flag.StringVar(&c.workdir, "workdir", "", "parent directory for the registries' temp dirs (default: system temp dir)")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds per scenario and registry (medians are reported)")
	flag.IntVar(&c.sizeMiB, "size-mib", 1024, "blob size for push/pull scenarios, MiB")
	flag.IntVar(&c.chunkMiB, "chunk-mib", 8, "PATCH size for the chunked push, MiB")
	flag.IntVar(&c.threads, "threads", 2, "wrk threads for manifest GET")
	flag.IntVar(&c.connections, "connections", 50, "wrk connections for manifest GET")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "wrk duration per round for manifest GET")
	flag.DurationVar(&c.startTimeout, "start-timeout", 30*time.Second, "how long to wait for a registry to answer GET /v2/")
	flag.BoolVar(&c.keep, "keep", false, "keep the registries' temp dirs (data, config, logs)")
	flag.Parse()
	return c
}

func (c config) validate() error {
	switch {
	case c.rounds < 1:
		return errors.New("-rounds must be >= 1")
	case c.sizeMiB < 1 || c.chunkMiB < 1:
		return errors.New("-size-mib and -chunk-mib must be >= 1")
	case c.threads < 1 || c.connections < c.threads:
		return errors.New("-threads must be >= 1 and -connections >= -threads")
	case c.duration < time.Second:
		return errors.New("-duration must be >= 1s")
	}
	switch c.only {
	case "", nameAtoll, nameDistribution:
	default:
		return fmt.Errorf("-only must be %q or %q, got %q", nameAtoll, nameDistribution, c.only)
	}
	return nil
}

func main() {
	if len(os.Args) == 3 && os.Args[1] == bareServeArg {
		if err := serveBare(os.Args[2]); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	cfg := parseFlags()
	benchkit.Main("bench", func(ctx context.Context) error { return run(ctx, cfg) })
}

// registrySpecs returns the registries to run, atoll first so rounds
// alternate atoll, distribution, atoll, ...
func registrySpecs(cfg config) ([]registrySpec, error) {
	var specs []registrySpec
	if cfg.only != nameDistribution {
		if cfg.atollBin != "" {
			specs = append(specs, atollSpec(cfg.atollBin))
		} else if cfg.only == nameAtoll {
			return nil, errors.New("-only=atoll needs -atoll-bin")
		} else {
			benchkit.Logf("atoll: skipped (no -atoll-bin); running distribution only")
		}
	}
	if cfg.only != nameAtoll {
		specs = append(specs, distributionSpec(cfg.distBin))
	}
	for _, s := range specs {
		if _, err := exec.LookPath(s.bin); err != nil {
			return nil, fmt.Errorf("%s binary: %w", s.name, err)
		}
	}
	return specs, nil
}

func run(ctx context.Context, cfg config) (err error) {
	if err := cfg.validate(); err != nil {
		return err
	}
	scens, err := selectScenarios(cfg.scenarios)
	if err != nil {
		return err
	}
	if needsWrk(scens) {
		if _, err := exec.LookPath(cfg.wrkBin); err != nil {
			return fmt.Errorf("wrk: %w", err)
		}
	}
	specs, err := registrySpecs(cfg)
	if err != nil {
		return err
	}

	var regs []*registry
	defer func() {
		for _, r := range regs {
			r.stop(err != nil, cfg.keep)
		}
	}()
	for _, s := range specs {
		r, err := startRegistry(ctx, s, cfg.workdir, cfg.startTimeout)
		if err != nil {
			return err
		}
		benchkit.Logf("%s: ready at %s (data %s)", r.name, r.base, r.dir)
		regs = append(regs, r)
	}

	b, err := newBench(cfg)
	if err != nil {
		return err
	}
	defer b.close()
	res := results{}
	for _, sc := range scens {
		if err := runScenario(ctx, b, sc, regs, res); err != nil {
			return err
		}
	}
	names := make([]string, len(regs))
	for i, r := range regs {
		names[i] = r.name
	}
	printReport(os.Stdout, cfg, names, scens, res)
	return nil
}

// runScenario runs the setup once per registry, then cfg.rounds alternating
// rounds, recording each measurement. A scenario compared with a
// reference measures that reference too, first in every round, so each
// ratio is to the machine as it was during those rounds (it is shared).
func runScenario(ctx context.Context, b *bench, sc scenario, regs []*registry, res results) error {
	if sc.reference {
		regs = []*registry{{name: nameReference}}
	}
	runRef := func(context.Context, *bench, *registry) (measurement, error) { return measurement{}, nil }
	if sc.versus != "" {
		ref, err := selectScenarios(sc.versus)
		if err != nil {
			return err
		}
		runRef = ref[0].run
		regs = append([]*registry{{name: nameReference}}, regs...)
	}
	for _, r := range regs {
		if sc.setup == nil {
			break
		}
		if r.name == nameReference && !sc.reference {
			continue
		}
		if err := sc.setup(ctx, b, r); err != nil {
			return r.annotate(fmt.Errorf("%s: %s setup: %w", r.name, sc.key, err))
		}
	}
	for round := 1; round <= b.cfg.rounds; round++ {
		for _, r := range regs {
			if err := ctx.Err(); err != nil {
				return err
			}
			run := sc.run
			if r.name == nameReference && !sc.reference {
				run = runRef
			}
			// What the previous measurement left dirty in the page cache
			// is written back now, untimed: otherwise the next one pays
			// for it (Distribution does not fsync its blobs, so the
			// reference that followed it ran at a quarter of its speed).
			syscall.Sync()
			m, err := run(ctx, b, r)
			if err != nil {
				return r.annotate(fmt.Errorf("%s: %s round %d: %w", r.name, sc.key, round, err))
			}
			res.add(sc.key, r.name, m)
			line := fmt.Sprintf("%-14s round %d/%d  %-12s %10.1f %s", sc.key, round, b.cfg.rounds, r.name, m.value, sc.unit)
			if m.p99 > 0 {
				line += fmt.Sprintf("  p99 %s", fmtLatency(m.p99))
			}
			benchkit.Logf("%s", line)
		}
	}
	return nil
}

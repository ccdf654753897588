// Command join measures how long a fresh member takes from start to ready
// in a 3-member cluster whose members hold many manifests (issue 12:
// target ≤ 60 s at 1,000,000 manifests on the project's 2-core machine).
//
// It builds the first member's metadata.db offline through the store's own
// write path (metadb.PutManifests, in batches, origin n1), and gives the
// second member a copy opened under its own name (n2): a member that
// applied n1's whole log, as a replica would. It starts both as real
// `atoll serve` processes, waits until they are ready, then starts n3
// with an empty data directory joined to them and polls its /readyz: the
// time from its start to the first 200 is the join time. n3 installs a
// snapshot (one of the members' logs is past SnapshotAfter batches) and
// replays the log after it. Then it checks that a sample of tags resolves
// on n3 and reports its RSS and metadata.db size.
//
//	go build -o bin/atoll ./cmd/atoll
//	flock /tmp/bench.lock go run ./test/bench/join -manifests 1000000
//
// Numbers are reported, never asserted.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

type config struct {
	shape
	batch      int
	rounds     int
	atollBin   string
	workdir    string
	keep       bool
	timeout    time.Duration
	profile    time.Duration
	buildOnly  bool
	joinerBins []string // the binaries of the fresh members, round-robin
}

// joinerBin is the binary of round i's fresh member (from 0).
func (c config) joinerBin(i int) string { return c.joinerBins[i%len(c.joinerBins)] }

func parseFlags() (config, error) {
	var c config
	flag.IntVar(&c.repos, "repos", 100_000, "repositories")
	flag.IntVar(&c.manifests, "manifests", 1_000_000, "manifests (1-4 KiB, a tenth with a subject)")
	flag.IntVar(&c.tags, "tags", 2_000_000, "tags, spread evenly over the manifests")
	flag.IntVar(&c.batch, "batch", 500, "manifests per write when building the members' databases")
	flag.IntVar(&c.rounds, "rounds", 3, "fresh members joined one after the other, each timed")
	flag.StringVar(&c.atollBin, "atoll-bin", "bin/atoll", "path to the atoll binary")
	flag.StringVar(&c.workdir, "workdir", "", "directory for the members (default: a new one under $TMPDIR); a database built there before is reused")
	flag.BoolVar(&c.keep, "keep", false, "keep the work directory")
	flag.DurationVar(&c.timeout, "timeout", 10*time.Minute, "how long a member may take to be ready")
	flag.DurationVar(&c.profile, "profile", 0, "take CPU profiles this long of n1 and the first fresh member as it joins, into the work directory")
	flag.BoolVar(&c.buildOnly, "build-only", false, "build the loaded members' databases in -workdir and stop")
	joiners := flag.String("joiner-bins", "", "comma-separated binaries the fresh members run in turn, to compare them in one run (default: -atoll-bin)")
	flag.Parse()
	c.joinerBins = benchkit.SplitList(*joiners)
	if len(c.joinerBins) == 0 {
		c.joinerBins = []string{c.atollBin}
	}
	if c.repos <= 0 || c.manifests < c.repos || c.tags < 0 || c.batch <= 0 || c.rounds <= 0 {
		return c, fmt.Errorf("need 0 < repos <= manifests, tags >= 0, batch > 0, rounds > 0")
	}
	return c, nil
}

func main() {
	benchkit.Main("bench-join", func(ctx context.Context) error {
		c, err := parseFlags()
		if err != nil {
			return err
		}
		dir := c.workdir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "atoll-bench-join-"); err != nil {
				return err
			}
			defer benchkit.RemoveTemp(dir, c.keep)
		}
		if c.atollBin, err = filepath.Abs(c.atollBin); err != nil {
			return err
		}
		for i, bin := range c.joinerBins {
			if c.joinerBins[i], err = filepath.Abs(bin); err != nil {
				return err
			}
		}
		return run(ctx, c, dir)
	})
}

func run(ctx context.Context, c config, dir string) error {
	built, err := build(ctx, c, dir)
	if err != nil || c.buildOnly {
		return err
	}
	cl := &cluster{dir: dir}
	defer cl.stop()
	for _, name := range []string{"n1", "n2"} {
		start := time.Now()
		if _, err := cl.startReady(ctx, name, c.atollBin, c.timeout, nil); err != nil {
			return err
		}
		benchkit.Logf("%s (loaded) ready in %v", name, time.Since(start).Round(time.Millisecond))
	}
	var joins []time.Duration
	for round := 1; round <= c.rounds; round++ {
		name := fmt.Sprintf("n%d", 2+round)
		if err := os.RemoveAll(filepath.Join(dir, name)); err != nil {
			return err
		}
		var (
			start time.Time
			peak  *peakRSS
		)
		m, err := cl.startReady(ctx, name, c.joinerBin(round-1), c.timeout, func(m *member) {
			start = time.Now()
			if peak != nil {
				peak.Stop() // a start on ports taken meanwhile
			}
			peak = samplePeakRSS(ctx, m.proc.Pid(), 100*time.Millisecond)
			if round == 1 && c.profile > 0 {
				profile(ctx, c.profile, dir, cl.members[0], m)
			}
		})
		if err != nil {
			return err
		}
		took := time.Since(start)
		peakMiB := peak.Stop()
		joins = append(joins, took)
		r, err := m.report(ctx, c.shape)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		benchkit.Logf("%s (%s) joined a 3-member cluster of %d manifests: ready %v after start; %s; peak anonymous RSS until ready %d MiB", name, c.joinerBin(round-1), c.manifests, took.Round(time.Millisecond), r, peakMiB)
		// The next round's fresh member makes three members again.
		if err := cl.remove(m); err != nil {
			return err
		}
	}
	printReport(c, built, joins)
	return nil
}

// profile takes CPU profiles of the members ms for d, in the background,
// into dir/<name>.cpu.
func profile(ctx context.Context, d time.Duration, dir string, ms ...*member) {
	for _, m := range ms {
		go func() {
			path := filepath.Join(dir, m.name+".cpu")
			if err := m.profile(ctx, d, path); err != nil {
				benchkit.Logf("profiling %s: %v", m.name, err)
				return
			}
			benchkit.Logf("CPU profile of %s: %s", m.name, path)
		}()
	}
}

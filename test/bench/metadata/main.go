// Command metadata benchmarks the metadata store at scale (issue 12).
//
// It loads a synthetic registry through the store's own write path
// (metadb.PutManifests, in batches): repositories, manifests of 1-4 KiB (a
// tenth with a subject) and tags, spread evenly; then it serves the store
// through the registry API (api.New over an in-process HTTP server) and
// reports:
//
//   - load rate, RSS (after a GC) and metadata.db size per million manifests,
//     and the time to open the loaded store again (the index is rebuilt);
//   - manifest GET by digest: requests/s and p99 against the same on a store
//     of 1,000 manifests (target: within 10 %), each over rounds, pooled;
//   - catalog and tag-list page latency (n=100);
//   - metadata.db size before and after 100,000 retags of one tag, and the
//     replication log's share of it.
//
// Numbers are reported, never asserted. Usually run through make
// bench-metadata; a smaller run:
//
//	go run ./test/bench/metadata -repos 10000 -manifests 100000 -tags 200000
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"time"

	"github.com/atollhq/atoll/storage/diskspace"
	"github.com/atollhq/atoll/test/bench/benchkit"
)

type config struct {
	repos, manifests, tags int
	small                  int // manifests of the small store GETs are compared against
	batch                  int
	retags                 int
	requests               int // GETs per measurement
	concurrency            int
	cacheSize              int64
	workdir                string
	keep                   bool
	reuse                  bool // open the stores a -keep run left in -workdir instead of loading them
	cpuProfile             string
	getProfile             string // CPU profile of the big store's uniform GETs only
	getsOnly               bool   // stop after the manifest GETs
	getRounds              int    // GET measurements of each store, alternated and pooled
}

func parseFlags() (config, error) {
	var c config
	var cache string
	flag.IntVar(&c.repos, "repos", 100_000, "repositories")
	flag.IntVar(&c.manifests, "manifests", 1_000_000, "manifests (1-4 KiB, a tenth with a subject)")
	flag.IntVar(&c.tags, "tags", 2_000_000, "tags")
	flag.IntVar(&c.small, "small", 1_000, "manifests of the small store the GETs are compared against")
	flag.IntVar(&c.batch, "batch", 2000, "manifests per write (one transaction, one fsync)")
	flag.IntVar(&c.retags, "retags", 100_000, "retags of one tag between two manifests")
	flag.IntVar(&c.requests, "requests", 40_000, "manifest GETs per measurement")
	flag.IntVar(&c.getRounds, "getrounds", 3, "rounds of GETs of each store, pooled in the results")
	flag.IntVar(&c.concurrency, "concurrency", 4, "concurrent clients")
	flag.StringVar(&cache, "cachesize", "64MiB", "metadata.cachesize: manifest bytes kept in memory")
	flag.StringVar(&c.workdir, "workdir", "", "directory for the databases (default: a new one under $TMPDIR)")
	flag.BoolVar(&c.keep, "keep", false, "keep the databases")
	flag.BoolVar(&c.reuse, "reuse", false, "with -workdir: open the stores a -keep run left there instead of loading them (load rate and RSS then mean nothing)")
	flag.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.StringVar(&c.getProfile, "getprofile", "", "write a CPU profile of the measured uniform manifest GETs at the big store to this file (of the first round), and of the small store's to this file.small")
	flag.BoolVar(&c.getsOnly, "getsonly", false, "stop after the manifest GETs (with -reuse: a quick comparison of two builds)")
	flag.Parse()
	n, err := diskspace.ParseSize(cache)
	if err != nil {
		return c, fmt.Errorf("-cachesize: %w", err)
	}
	c.cacheSize = n
	if c.reuse && c.workdir == "" {
		return c, fmt.Errorf("-reuse needs -workdir")
	}
	if c.repos <= 0 || c.manifests < c.repos || c.tags < 0 || c.batch <= 0 || c.getRounds <= 0 {
		return c, fmt.Errorf("need 0 < repos <= manifests, tags >= 0, batch > 0, getrounds > 0")
	}
	return c, nil
}

func main() {
	benchkit.Main("bench-metadata", func(ctx context.Context) error {
		c, err := parseFlags()
		if err != nil {
			return err
		}
		if c.cpuProfile != "" {
			f, err := os.Create(c.cpuProfile)
			if err != nil {
				return err
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				return err
			}
			defer pprof.StopCPUProfile()
		}
		dir := c.workdir
		if dir == "" {
			if dir, err = os.MkdirTemp("", "bench-metadata-"); err != nil {
				return err
			}
			defer benchkit.RemoveTemp(dir, c.keep)
		}
		return run(ctx, c, dir)
	})
}

func run(ctx context.Context, c config, dir string) error {
	fmt.Printf("bench-metadata (CPU times are the process's user and system time): %d repositories, %d manifests, %d tags; cache %s; load average %s\n\n",
		c.repos, c.manifests, c.tags, diskspace.Bytes(uint64(c.cacheSize)), benchkit.Loadavg())

	smallShape := shape{repos: max(1, c.small/10), manifests: c.small, tags: c.small * c.tags / c.manifests}
	small, err := load(ctx, c, filepath.Join(dir, "small"), smallShape)
	if err != nil {
		return fmt.Errorf("small store: %w", err)
	}
	// Each store's rounds are pooled, so that the collections the big
	// store's heap costs are counted where they fall. The small store is
	// measured alone in the process: with the big index in the heap, its
	// requests would pay that index's collections too.
	var smallGet, smallZipf, bigGet, bigZipf latencies
	for round := range c.getRounds {
		profile := ""
		if round == 0 && c.getProfile != "" {
			profile = c.getProfile + ".small"
		}
		su, sz, err := getManifests(ctx, c, small, profile)
		if err != nil {
			small.close()
			return fmt.Errorf("small store: %w", err)
		}
		benchkit.Logf("GET round %d at %d: uniform %v, Zipf %v", round+1, c.small, su, sz)
		smallGet, smallZipf = smallGet.pool(su), smallZipf.pool(sz)
	}
	small.close()
	big, err := load(ctx, c, filepath.Join(dir, "big"), shape{repos: c.repos, manifests: c.manifests, tags: c.tags})
	if err != nil {
		return err
	}
	defer big.close()
	benchkit.Logf("at %d: %s", c.manifests, residency(big.path))
	for round := range c.getRounds {
		profile := ""
		if round == 0 {
			profile = c.getProfile
		}
		bu, bz, err := getManifests(ctx, c, big, profile)
		if err != nil {
			return err
		}
		benchkit.Logf("GET round %d at %d: uniform %v, Zipf %v", round+1, c.manifests, bu, bz)
		bigGet, bigZipf = bigGet.pool(bu), bigZipf.pool(bz)
	}
	// Each result goes to the log as it comes, in case the run is cut short.
	benchkit.Logf("GET at %d: uniform %v, Zipf %v; at %d: uniform %v, Zipf %v", c.small, smallGet, smallZipf, c.manifests, bigGet, bigZipf)
	if c.getsOnly {
		benchkit.Logf("GET at %d against %d: uniform req/s %+.1f %%, p99 %+.1f %%, CPU a GET %+.1f %%, the store's CPU a read %+.1f %%; Zipf req/s %+.1f %%, p99 %+.1f %%, CPU a GET %+.1f %%, the store's %+.1f %%", c.manifests, c.small,
			pct(bigGet.rate, smallGet.rate), pct(float64(bigGet.p99), float64(smallGet.p99)), pct(cpuPer(bigGet), cpuPer(smallGet)), pct(storeCPUPer(bigGet), storeCPUPer(smallGet)),
			pct(bigZipf.rate, smallZipf.rate), pct(float64(bigZipf.p99), float64(smallZipf.p99)), pct(cpuPer(bigZipf), cpuPer(smallZipf)), pct(storeCPUPer(bigZipf), storeCPUPer(smallZipf)))
		return nil
	}
	catalog, tagList, err := pages(ctx, c, big)
	if err != nil {
		return err
	}
	benchkit.Logf("catalog %v; tag list %v", catalog, tagList)
	reopen, reopenCPU, err := big.reopen()
	if err != nil {
		return err
	}
	benchkit.Logf("reopened in %v (CPU %v); file %s, log %s", reopen.Round(time.Millisecond), reopenCPU.Round(time.Millisecond), mib(float64(big.dbSize)), mib(float64(big.logSize)))
	if c.reuse { // the churn starts from an empty store
		if err := os.RemoveAll(filepath.Join(dir, "churn")); err != nil {
			return err
		}
	}
	churn, err := retags(ctx, c, filepath.Join(dir, "churn"))
	if err != nil {
		return err
	}

	perM := 1e6 / float64(c.manifests)
	t := benchkit.NewTable(os.Stdout, "measure", "value", "note")
	t.Row("load rate", fmt.Sprintf("%.0f manifests/s", float64(c.manifests)/big.loadTime.Seconds()),
		fmt.Sprintf("%d manifests in %v (CPU %v), batches of %d", c.manifests, big.loadTime.Round(time.Second), big.loadCPU.Round(time.Second), c.batch))
	t.Row("RSS per 1M manifests", mib(float64(big.rss)*perM), fmt.Sprintf("RSS %s after load and GC (heap %s)", mib(float64(big.rss)), mib(float64(big.heap))))
	t.Row("metadata.db per 1M manifests", mib(float64(big.dbSize)*perM), fmt.Sprintf("file %s; log bucket %s of it", mib(float64(big.dbSize)), mib(float64(big.logSize))))
	t.Row("open the loaded store", reopen.Round(time.Millisecond).String(), fmt.Sprintf("CPU %v; rebuilds the index from disk", reopenCPU.Round(time.Millisecond)))
	t.Row(fmt.Sprintf("manifest GET at %d, uniform", c.small), smallGet.String(), "")
	t.Row(fmt.Sprintf("manifest GET at %d, uniform", c.manifests), bigGet.String(),
		fmt.Sprintf("req/s %+.1f %%, p99 %+.1f %% (target within 10 %%)", pct(bigGet.rate, smallGet.rate), pct(float64(bigGet.p99), float64(smallGet.p99))))
	t.Row(fmt.Sprintf("manifest GET at %d, Zipf", c.small), smallZipf.String(), "")
	t.Row(fmt.Sprintf("manifest GET at %d, Zipf", c.manifests), bigZipf.String(),
		fmt.Sprintf("req/s %+.1f %%, p99 %+.1f %%", pct(bigZipf.rate, smallZipf.rate), pct(float64(bigZipf.p99), float64(smallZipf.p99))))
	t.Row("catalog page (n=100)", catalog.String(), "random last=")
	t.Row("tag list page (n=100)", tagList.String(), "random repository")
	t.Row(fmt.Sprintf("metadata.db, %d retags of one tag", c.retags), fmt.Sprintf("%s -> %s", kib(churn.before), kib(churn.after)),
		fmt.Sprintf("%.1fx; log bucket %s of it (%.0f B a retag); without the log %.1fx", float64(churn.after)/float64(churn.before),
			kib(churn.log), float64(churn.log)/float64(c.retags), float64(churn.after-churn.log)/float64(churn.before)))
	t.Row("  the same, log trimmed, reopened", kib(churn.trimmed),
		fmt.Sprintf("%.1fx of before: Open compacts the file", float64(churn.trimmed)/float64(churn.before)))
	t.Flush()
	return nil
}

func pct(v, base float64) float64 { return (v/base - 1) * 100 }

// cpuPer is the process's CPU time a request of l.
func cpuPer(l latencies) float64 { return float64(l.cost.cpu) / float64(l.n) }

// storeCPUPer is the CPU time a read from the store alone took.
func storeCPUPer(l latencies) float64 { return float64(l.store.cpu) / float64(l.store.n) }

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func kib(b int64) string { return fmt.Sprintf("%d KiB", b>>10) }

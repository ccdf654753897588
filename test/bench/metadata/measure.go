package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// latencies summarises timed requests.
type latencies struct {
	n        int
	rate     float64 // requests/s
	p50, p99 time.Duration
	// cost is what the process spent serving (and sending) them, when
	// measured: it tells a slower store from a busier machine.
	cost *usage
	// all are the requests' times, sorted, over elapsed: what pooling
	// rounds needs.
	all     []time.Duration
	elapsed time.Duration
	// store is what the same reads cost the metadata store alone.
	store storeReads
}

// pool returns the measurements of l and m as one: rate over their
// summed time, percentiles over all their requests, costs summed.
func (l latencies) pool(m latencies) latencies {
	if l.n == 0 {
		return m
	}
	all := slices.Concat(l.all, m.all)
	slices.Sort(all)
	out := latencies{n: len(all), all: all, elapsed: l.elapsed + m.elapsed}
	out.rate = float64(out.n) / out.elapsed.Seconds()
	out.p50, out.p99 = all[len(all)/2], all[len(all)*99/100]
	if l.cost != nil && m.cost != nil {
		c := l.cost.plus(*m.cost)
		out.cost = &c
	}
	out.store = l.store.plus(m.store)
	return out
}

func (l latencies) String() string {
	s := fmt.Sprintf("%.0f req/s, p50 %v, p99 %v", l.rate, l.p50.Round(time.Microsecond), l.p99.Round(time.Microsecond))
	if l.cost != nil && l.n > 0 {
		s += fmt.Sprintf(" (CPU %v, %.1f page faults a request, %.2f major; %d GCs, %v of GC CPU; %.2f involuntary switches a request, %s)", (l.cost.cpu / time.Duration(l.n)).Round(time.Microsecond),
			float64(l.cost.faults)/float64(l.n), float64(l.cost.major)/float64(l.n), l.cost.gcs, l.cost.gcCPU.Round(time.Millisecond),
			float64(l.cost.ivcsw)/float64(l.n), l.cost.mach.others(l.cost.cpu))
	}
	if l.store.n > 0 {
		s += fmt.Sprintf("; the store alone: %v", l.store)
	}
	return s
}

// hammer sends n requests from workers clients, the i-th to url(i) (which
// must answer 200), and times them.
func hammer(ctx context.Context, workers, n int, url func(rng *rand.Rand) string) (latencies, error) {
	hc := benchkit.NewHTTPClient(workers, workers)
	// Its connections (1 MiB buffers each way) would otherwise idle on
	// for 90 s: over the warm-ups and rounds of a run, hundreds of them,
	// most of a 1M store's heap goal (837 of 1,347 MiB live, by a heap
	// profile), stacks and all for each collection to scan.
	defer hc.CloseIdleConnections()
	before := readUsage()
	var (
		mu   sync.Mutex
		all  []time.Duration
		errs []error
		wg   sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 42))
			took := make([]time.Duration, 0, n/workers)
			for k := 0; k < n/workers && ctx.Err() == nil; k++ {
				u := url(rng)
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
				req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
				resp, err := hc.Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("GET %s: %s", u, resp.Status)
					}
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				took = append(took, time.Since(t0))
			}
			mu.Lock()
			all = append(all, took...)
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		return latencies{}, errs[0]
	}
	if err := ctx.Err(); err != nil {
		return latencies{}, err
	}
	cost := readUsage().since(before)
	slices.Sort(all)
	return latencies{n: len(all), rate: float64(len(all)) / elapsed.Seconds(),
		p50: all[len(all)/2], p99: all[len(all)*99/100], cost: &cost, all: all, elapsed: elapsed}, nil
}

// getManifests GETs manifests of the store by digest, picked uniformly
// (at a million nearly every one misses the cache) and skewed (Zipf,
// s=1.1, as pulls of popular images are), then reads the same manifests
// straight from the store (readStore). The URLs are computed before the
// clock starts. A non-empty profile is where a CPU profile of the
// measured uniform GETs goes (-cpuprofile must be off: one at a time).
func getManifests(ctx context.Context, c config, l *loaded, profile string) (uniform, skewed latencies, err error) {
	rng := rand.New(rand.NewPCG(7, 7))
	zipf := rand.NewZipf(rng, 1.1, 1, uint64(l.manifests-1))
	for k, pick := range []func() int{
		func() int { return rng.IntN(l.manifests) },
		func() int { return int(zipf.Uint64() * 2654435761 % uint64(l.manifests)) },
	} {
		urls := make([]string, 0, c.requests)
		refs := make([]ref, 0, c.requests)
		for range c.requests {
			repo, d := l.manifest(pick())
			urls = append(urls, l.srv.URL+"/v2/"+repo+"/manifests/"+d.String())
			refs = append(refs, ref{repo, d})
		}
		var next atomic.Int64
		url := func(*rand.Rand) string { return urls[int(next.Add(1))%len(urls)] }
		benchkit.Logf("GET %d manifests of %d (warm-up, then measured)", c.requests, l.manifests)
		if err := warmUp(ctx, c, l, url); err != nil {
			return uniform, skewed, err
		}
		stop := func() {}
		if k == 0 && profile != "" {
			if stop, err = startProfile(profile); err != nil {
				return uniform, skewed, err
			}
		}
		lat, err := hammer(ctx, c.concurrency, c.requests, url)
		stop()
		if err != nil {
			return uniform, skewed, err
		}
		// The same reads again, straight from the store.
		if lat.store, err = readStore(ctx, l, c.concurrency, refs); err != nil {
			return uniform, skewed, err
		}
		if k == 0 {
			uniform = lat
		} else {
			skewed = lat
		}
	}
	return uniform, skewed, nil
}

// warmUp sends at least 2,000 requests to the store of l, and more, 2,000
// at a time, until the process has allocated one and a half heap goals
// since the store was served (at most 200,000 requests): until then the
// heap has not yet grown to its goal once since the store opened, and each
// 4 KiB it grows by is memory the process touches for the first time, a
// page fault (0.6-0.9 a GET in the first 40,000 at a million manifests,
// whose index puts the goal half a gigabyte past what Open left; 10 us
// each on this project's VM), a cost of a registry's first seconds, not of
// one serving for longer. The collections of the measured requests are
// measured.
func warmUp(ctx context.Context, c config, l *loaded, url func(*rand.Rand) string) error {
	const chunk, most = 2000, 100
	var sent int
	for i := 0; i < most; i++ {
		n := min(c.requests, chunk)
		if _, err := hammer(ctx, c.concurrency, n, url); err != nil {
			return err
		}
		sent += n
		if allocs, goal := heapAllocsGoal(); allocs-l.allocsServed >= goal*3/2 {
			break
		}
	}
	allocs, goal := heapAllocsGoal()
	benchkit.Logf("warmed up with %d requests; %s allocated since the store was served, the heap's goal %s", sent, mib(float64(allocs-l.allocsServed)), mib(float64(goal)))
	return nil
}

// heapAllocsGoal returns the bytes the process has allocated on the heap
// so far and the heap's goal (runtime/metrics).
func heapAllocsGoal() (allocs, goal uint64) {
	m := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}, {Name: "/gc/heap/goal:bytes"}}
	metrics.Read(m)
	if m[0].Value.Kind() == metrics.KindUint64 && m[1].Value.Kind() == metrics.KindUint64 {
		return m[0].Value.Uint64(), m[1].Value.Uint64()
	}
	return 0, 0
}

// pages times catalog pages after a random repository and the tag list
// of a random repository.
func pages(ctx context.Context, c config, l *loaded) (catalog, tags latencies, err error) {
	n := min(c.requests/10, 4000)
	benchkit.Logf("catalog and tag-list pages, %d each", n)
	catalog, err = hammer(ctx, c.concurrency, n, func(rng *rand.Rand) string {
		return l.srv.URL + "/v2/_catalog?n=100&last=" + benchkit.RepoName(rng.IntN(l.repos))
	})
	if err != nil {
		return
	}
	tags, err = hammer(ctx, c.concurrency, n, func(rng *rand.Rand) string {
		return l.srv.URL + "/v2/" + benchkit.RepoName(rng.IntN(l.repos)) + "/tags/list?n=100"
	})
	return
}

// startProfile starts a CPU profile into file path and returns what stops
// it.
func startProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
)

// A ref names a manifest to read.
type ref struct {
	repo string
	d    digest.Digest
}

// storeReads is what reading manifests straight from the metadata store
// cost, without HTTP: the part of a GET that the store's read path
// (index, cache, database, decode) takes, measured in CPU rather than
// requests/s, which on a shared machine move with its load.
type storeReads struct {
	n             int
	cpu           time.Duration
	allocs, bytes uint64
	faults, major int64 // page faults, and of those the ones that read the disk
	gcs           uint32
	ivcsw         int64   // involuntary context switches
	mach          machine // what the whole machine did meanwhile
}

func (r storeReads) plus(s storeReads) storeReads {
	return storeReads{n: r.n + s.n, cpu: r.cpu + s.cpu, allocs: r.allocs + s.allocs, bytes: r.bytes + s.bytes,
		faults: r.faults + s.faults, major: r.major + s.major, gcs: r.gcs + s.gcs, ivcsw: r.ivcsw + s.ivcsw, mach: r.mach.plus(s.mach)}
}

func (r storeReads) String() string {
	if r.n == 0 {
		return "none"
	}
	return fmt.Sprintf("%v CPU, %.1f allocations (%.0f B), %.2f page faults (%.3f major) a read; %d GCs; %d involuntary switches, %s", (r.cpu / time.Duration(r.n)).Round(100*time.Nanosecond),
		float64(r.allocs)/float64(r.n), float64(r.bytes)/float64(r.n), float64(r.faults)/float64(r.n), float64(r.major)/float64(r.n), r.gcs,
		r.ivcsw, r.mach.others(r.cpu))
}

// readStore reads refs from l's store with workers goroutines, each ref
// once.
func readStore(ctx context.Context, l *loaded, workers int, refs []ref) (storeReads, error) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	allocs, bytes := ms.Mallocs, ms.TotalAlloc
	before := readUsage()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(refs) {
					return
				}
				if _, err := l.meta.Manifest(refs[i].repo, refs[i].d); err != nil {
					mu.Lock()
					first = cmpOr(first, fmt.Errorf("read %s@%s: %w", refs[i].repo, refs[i].d, err))
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	cost := readUsage().since(before)
	runtime.ReadMemStats(&ms)
	if first != nil {
		return storeReads{}, first
	}
	if err := ctx.Err(); err != nil {
		return storeReads{}, err
	}
	return storeReads{n: len(refs), cpu: cost.cpu, allocs: ms.Mallocs - allocs, bytes: ms.TotalAlloc - bytes,
		faults: cost.faults, major: cost.major, gcs: cost.gcs, ivcsw: cost.ivcsw, mach: cost.mach}, nil
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

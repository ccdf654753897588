package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage/filesystem"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/test/bench/benchkit"
)

// loaded is a store filled by load and served through the registry API.
type loaded struct {
	shape
	path string
	opts metadb.Options
	meta *metadb.Store
	srv  *httptest.Server

	loadTime        time.Duration
	loadCPU         time.Duration // CPU time (user and system) the process spent loading
	rss, heap       int64         // anonymous RSS and Go heap in use after load, in bytes
	dbSize, logSize int64
	allocsServed    uint64 // heap bytes the process had allocated when the store was served
}

// start of repository r's manifests: repository r holds manifests
// [start(r), start(r+1)).
func (s shape) start(r int) int { return r * s.manifests / s.repos }

func (s shape) repoOf(i int) int {
	r := i * s.repos / s.manifests
	for r+1 < s.repos && s.start(r+1) <= i {
		r++
	}
	for r > 0 && s.start(r) > i {
		r--
	}
	return r
}

// hasSubject: a tenth of the manifests refer to the one before them in
// their repository.
func (s shape) hasSubject(i int) bool { return i%10 == 9 && i > s.start(s.repoOf(i)) }

// manifest regenerates manifest i of the store, with its subject.
func (s shape) manifest(i int) (repo string, d digest.Digest) {
	var subject digest.Digest
	if s.hasSubject(i) {
		subject = benchkit.ManifestAt(i-1, "").Descriptor.Digest // i-1 has none: i%10 == 8
	}
	return benchkit.RepoName(s.repoOf(i)), benchkit.ManifestAt(i, subject).Descriptor.Digest
}

// load fills a new store at dir through PutManifests and serves it.
func load(ctx context.Context, c config, dir string, s shape) (*loaded, error) {
	l := &loaded{shape: s, path: filepath.Join(dir, "metadata.db"), opts: metadb.Options{Origin: "bench", Config: metadb.Config{CacheSize: c.cacheSize}}}
	meta, err := metadb.Open(l.path, l.opts)
	if err != nil {
		return nil, err
	}
	l.meta = meta
	if c.reuse && len(meta.Repositories("", 1)) > 0 {
		benchkit.Logf("reusing the %d manifests loaded in %s", s.manifests, dir)
		return l, l.serve(dir)
	}
	benchkit.Logf("loading %d manifests into %d repositories, %d tags", s.manifests, s.repos, s.tags)
	start, last, cpu0 := time.Now(), time.Now(), cpuTime()
	batch := make([]metadb.ManifestPut, 0, c.batch)
	var prev digest.Digest
	for r := 0; r < s.repos; r++ {
		for i := s.start(r); i < s.start(r+1); i++ {
			var subject digest.Digest
			if s.hasSubject(i) {
				subject = prev
			}
			m := benchkit.ManifestAt(i, subject)
			prev = m.Descriptor.Digest
			batch = append(batch, metadb.ManifestPut{Repo: benchkit.RepoName(r), Manifest: m, Tags: s.tagsOf(i)})
			if len(batch) == c.batch || i == s.manifests-1 {
				if err := meta.PutManifests(ctx, batch); err != nil {
					l.close()
					return nil, fmt.Errorf("load: %w", err)
				}
				batch = batch[:0]
			}
			if time.Since(last) > 10*time.Second {
				last = time.Now()
				benchkit.Logf("loaded %d of %d manifests (%.0f/s, CPU %v; load average %s)", i+1, s.manifests,
					float64(i+1)/time.Since(start).Seconds(), (cpuTime() - cpu0).Round(time.Second), benchkit.Loadavg())
			}
		}
	}
	l.loadTime, l.loadCPU = time.Since(start), cpuTime()-cpu0
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	l.heap = int64(ms.HeapInuse)
	if l.rss, err = rssAnon(); err != nil {
		benchkit.Logf("RSS: %v", err)
	}
	benchkit.Logf("loaded in %v; anonymous RSS %s, heap %s", l.loadTime.Round(time.Millisecond), mib(float64(l.rss)), mib(float64(l.heap)))
	if err := l.serve(dir); err != nil {
		l.close()
		return nil, err
	}
	return l, nil
}

func (l *loaded) serve(dir string) error {
	blobs, err := filesystem.New(filepath.Join(dir, "blobs"))
	if err != nil {
		return err
	}
	l.srv = httptest.NewServer(api.New(api.Config{}, api.Deps{Blobs: blobs, Meta: l.meta}))
	l.allocsServed, _ = heapAllocsGoal()
	return nil
}

func (l *loaded) close() {
	if l.srv != nil {
		l.srv.Close()
	}
	if l.meta != nil {
		_ = l.meta.Close()
		l.meta = nil
	}
}

// reopen closes the store, measures its file and log, and times Open:
// wall and CPU time.
func (l *loaded) reopen() (wall, cpu time.Duration, err error) {
	l.close()
	if l.dbSize, l.logSize, err = sizes(l.path); err != nil {
		return 0, 0, err
	}
	start, cpu0 := time.Now(), cpuTime()
	if l.meta, err = metadb.Open(l.path, l.opts); err != nil {
		return 0, 0, err
	}
	return time.Since(start), cpuTime() - cpu0, nil
}

// cpuTime returns the CPU time, user and system, this process has used:
// on a loaded machine, what a step costs where its wall time says how
// long it waited for a core too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// usage is what this process has spent so far.
type usage struct {
	cpu    time.Duration // user and system
	faults int64         // page faults, minor and major
	major  int64         // page faults that read from disk
	gcs    uint32        // garbage collections completed
	gcCPU  time.Duration // CPU the collector took (runtime/metrics)
	ivcsw  int64         // times the kernel took a core from a thread of ours to run another
	mach   machine       // what the whole machine did meanwhile
}

func readUsage() usage {
	var u usage
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		u.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		u.faults, u.major = ru.Minflt+ru.Majflt, ru.Majflt
		u.ivcsw = ru.Nivcsw
	}
	u.mach = readMachine()
	m := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}, {Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(m)
	if m[0].Value.Kind() == metrics.KindUint64 {
		u.gcs = uint32(m[0].Value.Uint64())
	}
	if m[1].Value.Kind() == metrics.KindFloat64 {
		u.gcCPU = time.Duration(m[1].Value.Float64() * float64(time.Second))
	}
	return u
}

func (u usage) plus(v usage) usage {
	return usage{cpu: u.cpu + v.cpu, faults: u.faults + v.faults, major: u.major + v.major, gcs: u.gcs + v.gcs, gcCPU: u.gcCPU + v.gcCPU,
		ivcsw: u.ivcsw + v.ivcsw, mach: u.mach.plus(v.mach)}
}

func (u usage) since(before usage) usage {
	return usage{cpu: u.cpu - before.cpu, faults: u.faults - before.faults, major: u.major - before.major, gcs: u.gcs - before.gcs, gcCPU: u.gcCPU - before.gcCPU,
		ivcsw: u.ivcsw - before.ivcsw, mach: u.mach.since(before.mach)}
}

// sizes returns the size of the closed database at path and the bytes of
// pages its replication log takes.
func sizes(path string) (file, log int64, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, err
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		return 0, 0, err
	}
	defer db.Close()
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("log")); b != nil {
			st := b.Stats()
			log = int64(st.LeafAlloc + st.BranchAlloc)
		}
		return nil
	})
	return fi.Size(), log, err
}

// rssAnon reads this process's anonymous resident memory: the heap and
// stacks, not the database pages bbolt maps from the file.
func rssAnon() (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no RssAnon in /proc/self/status")
}

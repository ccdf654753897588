package metadb

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// BenchmarkOnlineCompaction: how long writes pause while the file is
// compacted online, at about 10 MB and 1 GB of live manifests (4 KiB
// each), a third more pushed and then deleted and collected (the file is
// then sparse, though not always past compactFree). The file is compacted
// twice, a reader reading random manifests from disk all along: once with
// writes idle (the snapshot copied while writes could go on is kept),
// once with a writer retagging all along (the file is then copied with
// writes paused, or past pausedCopyMax left as it is); each reports the pause, the longest write and read,
// and the reads served during the compaction. Run one size at a time,
// under the benchmark lock:
//
//	flock /tmp/bench.lock go test -run '^$' -bench 'OnlineCompaction/10MB' -benchtime 1x ./storage/metadb
func BenchmarkOnlineCompaction(b *testing.B) {
	for _, size := range []struct {
		name string
		live int
	}{{"10MB", 10 << 20}, {"1GB", 1 << 30}} {
		b.Run(size.name, func(b *testing.B) {
			for range b.N {
				benchCompaction(b, size.live)
			}
		})
	}
}

func benchCompaction(b *testing.B, live int) {
	b.StopTimer()
	path := filepath.Join(b.TempDir(), "metadata.db")
	s, err := Open(path, Options{NoSync: true, Config: Config{CacheSize: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const size = 4 << 10
	n := live / size
	extra := n / 3
	pad := strings.Repeat("x", size-16)
	kept := make([]digest.Digest, 0, n)
	var two [2]*storage.Manifest
	start := time.Now()
	puts := make([]ManifestPut, 0, 1000)
	for i := range n + extra {
		m := manifest(fmt.Sprintf("%08d%s", i, pad), "")
		if i < n {
			kept = append(kept, m.Descriptor.Digest)
		}
		if i < len(two) {
			two[i] = m
		}
		puts = append(puts, ManifestPut{Repo: fmt.Sprintf("r%d", i%100), Manifest: m, Tags: []string{fmt.Sprint(i)}})
		if len(puts) == cap(puts) || i == n+extra-1 {
			if err := s.PutManifests(ctx, puts); err != nil {
				b.Fatal(err)
			}
			puts = puts[:0]
		}
	}
	for i := n; i < n+extra; i++ {
		if err := s.DeleteTag(ctx, fmt.Sprintf("r%d", i%100), fmt.Sprint(i)); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.CollectManifests(ctx, 0, false); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Trim(ctx, s.Vector()); err != nil {
		b.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%d manifests kept, %d pushed, deleted and collected in %v; file %d MiB", n, extra, time.Since(start).Round(time.Second), fi.Size()>>20)

	for _, busy := range []bool{false, true} {
		compactWhile(b, s, path, kept, two, busy)
	}
}

// compactWhile compacts s while a reader reads random manifests of kept,
// and, if busy, a writer retags between the two manifests all along (each
// snapshot copy is then overtaken: the file is copied with writes
// paused); else the writer writes once before.
func compactWhile(b *testing.B, s *Store, path string, kept []digest.Digest, two [2]*storage.Manifest, busy bool) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, reads, during atomic.Int64
	var maxWrite, maxRead atomic.Int64
	var compacting atomic.Bool
	errs := make(chan error, 2)
	wg.Go(func() { // a writer: retags
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			t0 := time.Now()
			if err := s.PutManifest(ctx, "r0", two[i%2], "churn"); err != nil {
				errs <- err
				return
			}
			maxWrite.Store(max(maxWrite.Load(), int64(time.Since(t0))))
			writes.Add(1)
			if !busy {
				return
			}
		}
	})
	if !busy {
		wg.Wait()
	}
	wg.Go(func() { // a reader: random manifests, mostly from disk
		rng := rand.New(rand.NewPCG(1, 2))
		for {
			select {
			case <-stop:
				return
			default:
			}
			k := rng.IntN(len(kept))
			t0 := time.Now()
			m, err := s.Manifest(fmt.Sprintf("r%d", k%100), kept[k])
			if err != nil || m.Descriptor.Digest != kept[k] {
				errs <- fmt.Errorf("manifest %d: %v", k, err)
				return
			}
			maxRead.Store(max(maxRead.Load(), int64(time.Since(t0))))
			reads.Add(1)
			if compacting.Load() {
				during.Add(1)
			}
		}
	})
	start := time.Now()
	b.StartTimer()
	compacting.Store(true)
	c, err := s.compactOnline(ctx, true) // the pause, whether or not the file is due
	compacting.Store(false)
	b.StopTimer()
	took := time.Since(start)
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Error(err)
	}
	if err != nil || !c.Done && !c.Deferred {
		b.Fatalf("compaction: %+v, %v", c, err)
	}
	mode := "writes idle"
	if busy {
		mode = "a writer busy"
	}
	b.Logf("%s: file %d MiB -> %d MiB (live pages %d MiB) in %v: writes paused %v (copied with writes paused: %v; left for later: %v); longest write %v, longest read %v; %d writes, %d reads, %d of them during the compaction",
		mode, c.Before>>20, c.After>>20, c.Live>>20, took.Round(time.Millisecond), c.Paused.Round(time.Millisecond), c.Again, c.Deferred,
		time.Duration(maxWrite.Load()).Round(time.Millisecond), time.Duration(maxRead.Load()).Round(time.Millisecond), writes.Load(), reads.Load(), during.Load())
}

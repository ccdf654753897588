package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/node/metasync"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
	"github.com/atollhq/atoll/test/bench/benchkit"
)

// churn is the database file before and after retags, and the log's share.
// Every figure is taken with the store open (no reopen), as the registry
// runs: its replicator trims the log each TrimAfter batches and compacts
// the file when that left it sparse.
type churn struct {
	before  int64 // the file before the retags
	after   int64 // at the end of the retags
	log     int64 // bytes of pages the log took then
	trimmed int64 // after the next periodic trim round, and a reopen that finds nothing left to compact
	online  int64 // after that round, before the reopen
	peak    int64 // the largest file seen during the retags (each 1000)
	longest int   // the most batches the log held (each 1000)
	writes  latencies
}

// retags retags one tag between two 441-byte manifests c.retags times in
// a new store (without fsync: the file's layout is the same) through the
// registry's write path (metasync's Store over a Replicator running on a
// member on its own, default settings) and measures the file.
func retags(ctx context.Context, c config, dir string) (ch churn, err error) {
	path := filepath.Join(dir, "metadata.db")
	opts := metadb.Options{Origin: "bench", NoSync: true}
	s, err := metadb.Open(path, opts)
	if err != nil {
		return ch, err
	}
	defer func() {
		if s != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	r := metasync.New(metasync.Config{}, metasync.Deps{Self: "bench", Log: s})
	meta := metasync.Wrap(s, r)
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { r.Run(runCtx) })
	defer func() { stop(); wg.Wait() }()

	two := [2]*storage.Manifest{}
	for k := range two {
		two[k] = benchkit.ManifestAt(k, "")
		two[k].Content = []byte(strings.Repeat(string(rune('a'+k)), 441))
		two[k].Descriptor.Size = 441
		two[k].Descriptor.Digest = digest.FromBytes(two[k].Content)
		if err := meta.PutManifest(ctx, "churn", two[k], "latest"); err != nil {
			return ch, err
		}
	}
	if ch.before, err = fileSize(path); err != nil {
		return ch, err
	}
	benchkit.Logf("%d retags of one tag, online", c.retags)
	took := make([]time.Duration, 0, c.retags)
	start := time.Now()
	for k := 0; k < c.retags; k++ {
		t0 := time.Now()
		if err := meta.PutManifest(ctx, "churn", two[k%2], "latest"); err != nil {
			return ch, err
		}
		took = append(took, time.Since(t0))
		if k%1000 == 0 {
			size, err := fileSize(path)
			if err != nil {
				return ch, err
			}
			n, err := s.LogLen()
			if err != nil {
				return ch, err
			}
			ch.peak, ch.longest = max(ch.peak, size), max(ch.longest, n)
		}
	}
	elapsed := time.Since(start)
	slices.Sort(took)
	ch.writes = latencies{n: len(took), rate: float64(len(took)) / elapsed.Seconds(), p50: took[len(took)/2], p99: took[len(took)*99/100]}
	benchkit.Logf("retags: %v; longest %v", ch.writes, took[len(took)-1].Round(time.Millisecond))

	// The end of the churn: the replicator stopped, so that nothing moves
	// while a copy of the file is measured.
	stop()
	wg.Wait()
	if ch.after, err = fileSize(path); err != nil {
		return ch, err
	}
	if _, ch.log, err = copySizes(path, filepath.Join(dir, "copy.db")); err != nil {
		return ch, err
	}
	// The next periodic round (Run's every TrimInterval, default 1m),
	// here at once.
	if err := r.Trim(ctx); err != nil {
		return ch, err
	}
	if ch.online, err = fileSize(path); err != nil {
		return ch, err
	}
	benchkit.Logf("metadata.db online: %d KiB before, at most %d KiB during %d retags (log at most %d batches), %d KiB at their end (log %d KiB), %d KiB after the next trim round",
		ch.before>>10, ch.peak>>10, c.retags, ch.longest, ch.after>>10, ch.log>>10, ch.online>>10)
	err, s = s.Close(), nil
	if err != nil {
		return ch, err
	}
	if s, err = metadb.Open(path, opts); err != nil {
		return ch, err
	}
	ch.trimmed, err = fileSize(path)
	return ch, err
}

func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// copySizes copies the database at path, which no one writes meanwhile,
// to tmp and measures the copy (sizes).
func copySizes(path, tmp string) (file, log int64, err error) {
	src, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer src.Close()
	dst, err := os.Create(tmp)
	if err != nil {
		return 0, 0, err
	}
	_, err = io.Copy(dst, src)
	if err = errors.Join(err, dst.Close()); err != nil {
		return 0, 0, err
	}
	defer os.Remove(tmp)
	return sizes(tmp)
}

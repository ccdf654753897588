package metasync

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
)

// Measurements for issue 12, run with
//
//	go test -run '^$' -bench . -benchtime 1x ./node/metasync
//
// over real metadb stores on disk and the in-process Network (no gRPC).

// benchMember opens a member's store under dir, on net.
func benchMember(b *testing.B, net *Network, dir, name string, cfg Config) *member {
	b.Helper()
	return openMember(b, net, filepath.Join(dir, name, "metadata.db"), name, cfg)
}

// BenchmarkJoin: a member holding n manifests of 1-4 KiB, each with a
// tag, loaded in batches of 500 (as an import is), and a fresh member
// catching up with it by replaying the log or by a snapshot.
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchJoin(b, n) })
	}
}

// benchManifest is manifest i of a benchmark: 1-4 KiB, unique to i.
func benchManifest(i int) *storage.Manifest {
	size := 1024 + int(uint32(i)*2654435761%3072)
	content := fmt.Appendf(nil, `{"schemaVersion":2,"config":{"digest":"%s"},"annotations":{"pad":"`, digest.FromString(fmt.Sprint(i)))
	content = append(content, bytes.Repeat([]byte("x"), max(0, size-len(content)-3))...)
	content = append(content, `"}}`...)
	return &storage.Manifest{
		Descriptor: v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))},
		Content:    content,
	}
}

// benchJoin is BenchmarkJoin with n manifests: -bench 'Join/10000/'
// alone skips writing the larger histories.
func benchJoin(b *testing.B, n int) {
	dir := b.TempDir()
	net := NewNetwork()
	src, err := metadb.Open(filepath.Join(dir, "a", "metadata.db"), metadb.Options{Origin: "a", Reserve: -1, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = src.Close() })
	net.Add("a", src)
	start := time.Now()
	puts := make([]metadb.ManifestPut, 0, 500)
	for i := range n {
		puts = append(puts, metadb.ManifestPut{Repo: fmt.Sprintf("r%d", i%1000), Manifest: benchManifest(i), Tags: []string{fmt.Sprintf("t%d", i)}})
		if len(puts) == cap(puts) || i == n-1 {
			if err := src.PutManifests(ctx, puts); err != nil {
				b.Fatal(err)
			}
			puts = puts[:0]
		}
	}
	b.Logf("%d manifests in batches of 500 written in %v", n, time.Since(start).Round(time.Millisecond))
	for _, mode := range []struct {
		name  string
		after int
	}{{"replay", -1}, {"snapshot", 1}} {
		b.Run(mode.name, func(b *testing.B) {
			for i := range b.N {
				cfg := testConfig
				cfg.SnapshotAfter = mode.after
				m := benchMember(b, net, dir, fmt.Sprintf("%s%d", mode.name, i), cfg)
				m.followOnly(b, "a")
				start := time.Now()
				if err := m.r.CatchUp(ctx); err != nil {
					b.Fatal(err)
				}
				took := time.Since(start)
				if got, want := m.store.Vector()["a"], src.Vector()["a"]; got != want {
					b.Fatalf("caught up to a/%d, want a/%d", got, want)
				}
				b.ReportMetric(took.Seconds(), "s/join")
			}
		})
	}
}

// BenchmarkChurnTrim: 20,000 retags of one tag between two manifests on a
// member whose peer applies them all; the log before and after one trim
// round, and the database file once reopened (metadb compacts at Open).
func BenchmarkChurnTrim(b *testing.B) {
	const retags = 20000
	dir := b.TempDir()
	net := NewNetwork()
	a, p := benchMember(b, net, dir, "a", testConfig), benchMember(b, net, dir, "b", testConfig)
	x, y := manifest("x"), manifest("y")
	for i := range retags {
		m := x
		if i%2 == 1 {
			m = y
		}
		if err := a.store.Store.PutManifest(ctx, "r", m, "latest"); err != nil {
			b.Fatal(err)
		}
	}
	p.followOnly(b, "a")
	a.followOnly(b, "b")
	if err := p.r.CatchUp(ctx); err != nil {
		b.Fatal(err)
	}
	before, _ := a.store.LogLen()
	if err := a.r.Trim(ctx); err != nil {
		b.Fatal(err)
	}
	after, _ := a.store.LogLen()
	path := filepath.Join(dir, "a", "metadata.db")
	fi1, _ := os.Stat(path)
	if err := a.store.Close(); err != nil {
		b.Fatal(err)
	}
	s, err := metadb.Open(path, metadb.Options{Origin: "a", Reserve: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fi2, _ := os.Stat(path)
	b.Logf("%d retags: log %d batches before trimming, %d after; metadata.db %d KiB, %d KiB reopened", retags, before, after, fi1.Size()>>10, fi2.Size()>>10)
	b.ReportMetric(float64(after), "batches-after-trim")
}

package metasync

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

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

// BenchmarkJoin: a member with n manifests, each pushed as its own write
// (one batch, as a push is), and a fresh member catching up with it by
// replaying the log or by a snapshot.
func BenchmarkJoin(b *testing.B) {
	for _, n := range []int{10000, 100000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) { benchJoin(b, n) })
	}
}

// benchJoin is BenchmarkJoin with n manifests: -bench 'Join/10000/'
// alone skips writing the larger histories.
func benchJoin(b *testing.B, n int) {
	dir := b.TempDir()
	net := NewNetwork()
	src := benchMember(b, net, dir, "a", testConfig)
	start := time.Now()
	for i := range n {
		if err := src.store.Store.PutManifest(ctx, fmt.Sprintf("r%d", i%100), manifest(fmt.Sprint(i)), fmt.Sprintf("t%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d manifests, one batch each, written in %v", n, time.Since(start).Round(time.Millisecond))
	for _, mode := range []struct {
		name  string
		after int
	}{{"replay", -1}, {"snapshot", 0}} {
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
				if got, want := m.store.Vector()["a"], src.store.Vector()["a"]; got != want {
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

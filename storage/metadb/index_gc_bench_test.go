package metadb

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// BenchmarkIndexGC measures what the garbage collector spends marking the
// in-memory index of n manifests (a tenth with a subject), n/10
// repositories, 2n tags (as bench-metadata loads them) and 2n blob links
// (one blob of its own per manifest, one of 100 shared): the GC CPU of one
// full collection with the index live, reported as gc-ms/op (mark CPU,
// from runtime/metrics), and the heap the index holds.
// applyManifest applies to st manifest number i with subject sub (or
// none), linked by repo under two tags, and the ops in extra; it returns
// the manifest's digest.
func applyManifest(b *testing.B, st *state, i int, repo string, sub digest.Digest, extra ...metalog.Op) digest.Digest {
	content := fmt.Appendf(nil, `{"schemaVersion":2,"n":%d}`, i)
	m := &storage.Manifest{Subject: sub, Content: content, Descriptor: v1.Descriptor{
		MediaType: v1.MediaTypeImageManifest, Digest: digest.FromBytes(content), Size: int64(len(content))}}
	rec, err := encodeRecord(m)
	if err != nil {
		b.Fatal(err)
	}
	d := m.Descriptor.Digest
	ops := append([]metalog.Op{
		{Key: string(manifestKey(d)), Value: rec, Stamp: uint64(i + 1)},
		{Key: string(manifestLinkKey(repo, d))},
		{Key: string(tagKey(repo, fmt.Sprint("v", i))), Value: []byte(d)},
		{Key: string(tagKey(repo, fmt.Sprint("w", i))), Value: []byte(d)},
	}, extra...)
	for _, op := range ops {
		if err := st.apply(op); err != nil {
			b.Fatal(err)
		}
	}
	return d
}

func BenchmarkIndexGC(b *testing.B) {
	for _, n := range []int{250_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			st := newState()
			var subject digest.Digest
			for i := range n {
				var sub digest.Digest
				if i%10 == 1 {
					sub = subject
				}
				repo := fmt.Sprintf("org%d/repo%d", i%(n/10)%100, i%(n/10))
				subject = applyManifest(b, st, i, repo, sub,
					metalog.Op{Key: string(blobLinkKey(repo, digest.FromString(fmt.Sprint("layer", i)))), Value: []byte("1234")},
					metalog.Op{Key: string(blobLinkKey(repo, digest.FromString(fmt.Sprint("base", i%100)))), Value: []byte("5678")})
			}
			st.settle()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			samples := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
			metrics.Read(samples)
			before := samples[0].Value.Float64()
			b.ResetTimer()
			for b.Loop() {
				runtime.GC()
			}
			metrics.Read(samples)
			b.ReportMetric((samples[0].Value.Float64()-before)*1000/float64(b.N), "gc-ms/op")
			b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
			runtime.KeepAlive(st)
		})
	}
}

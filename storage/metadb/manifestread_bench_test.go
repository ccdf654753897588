package metadb

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

// BenchmarkManifestMiss reads manifests with no cache: each read is a
// miss, one read transaction and one decode. Run it with -benchmem for
// what a miss allocates.
func BenchmarkManifestMiss(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "m.db"), Options{Reserve: -1, NoSync: true, Config: Config{CacheSize: -1}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const n = 1000
	ds := make([]digest.Digest, n)
	for i := range ds {
		m := manifest(fmt.Sprintf(`{"schemaVersion":2,"n":%d}`, i), "")
		ds[i] = m.Descriptor.Digest
		if err := s.PutManifest(context.Background(), "a/b", m, ""); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Manifest("a/b", ds[i%n]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

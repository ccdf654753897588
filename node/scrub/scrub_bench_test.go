package scrub

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"testing"
)

// The scrub's speed against the machine's limit: BenchmarkScrub reads
// back 256 MiB of blobs from the page cache through the filesystem store,
// BenchmarkSHA256 hashes as many bytes in memory. Their ratio is what the
// store's reads add to hashing.
const benchBlobs, benchBlobSize = 8, 32 << 20

func BenchmarkScrub(b *testing.B) {
	ctx := context.Background()
	dir := b.TempDir()
	s := newStoreIn(b, dir)
	for range benchBlobs {
		blob := make([]byte, benchBlobSize)
		_, _ = rand.Read(blob)
		if err := commit(ctx, s, blob); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(benchBlobs * benchBlobSize)
	for b.Loop() {
		if rep := Run(ctx, Deps{Self: "bench", Blobs: s}, Options{}); rep.Checked != benchBlobs || len(rep.Bad) != 0 || rep.Error != "" {
			b.Fatalf("%+v", rep)
		}
	}
}

func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 1<<20)
	_, _ = rand.Read(buf)
	b.SetBytes(benchBlobs * benchBlobSize)
	for b.Loop() {
		h := sha256.New()
		for range benchBlobs * benchBlobSize / len(buf) {
			h.Write(buf)
		}
		h.Sum(nil)
	}
}

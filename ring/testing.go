package ring

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/opencontainers/go-digest"
)

// TestDigests returns n distinct sha256 digests that depend only on seed and
// n, for tests of placement in this and other packages.
func TestDigests(seed uint64, n int) []digest.Digest {
	ds := make([]digest.Digest, n)
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], seed)
	for i := range ds {
		binary.LittleEndian.PutUint64(b[8:], uint64(i))
		sum := sha256.Sum256(b[:])
		ds[i] = digest.NewDigestFromBytes(digest.SHA256, sum[:])
	}
	return ds
}

// TestMembers returns n member names: "node-1", "node-2", ...
func TestMembers(n int) []string {
	ms := make([]string, n)
	for i := range ms {
		ms[i] = fmt.Sprintf("node-%d", i+1)
	}
	return ms
}

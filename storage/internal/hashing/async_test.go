package hashing

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// TestAsync: the hash of writes of every size, across buffer boundaries,
// is the hash of their bytes, and a hashed Async holds no buffer.
func TestAsync(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 3*hashBufSize*hashBufCount/16+7)
	a := NewAsync(sha256.New())
	defer a.Close()
	for off, n := 0, 1; off < len(data); n = n*3 + 1 {
		end := min(off+n, len(data))
		a.Write(data[off:end])
		off = end
	}
	want := sha256.Sum256(data)
	if got := a.Hash().Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("hash %x, want %x", got, want)
	}
	if n := len(a.pending); n != 0 {
		t.Errorf("%d buffers still held after Hash", n)
	}
	a.Write([]byte("more"))
	want = sha256.Sum256(append(data, "more"...))
	if got := a.Hash().Sum(nil); !bytes.Equal(got, want[:]) {
		t.Fatalf("hash after more %x, want %x", got, want)
	}
}

package scrub

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// cached returns how many pages of file path the page cache holds.
func cached(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.Fd()), &unix.CachestatRange{}, &st, 0); errors.Is(err, unix.ENOSYS) {
		t.Skip("this kernel has no cachestat (Linux 6.5+): a scrub leaves the page cache as it is")
	} else if err != nil {
		t.Fatal(err)
	}
	return st.Cache
}

// A scrub leaves the page cache as it found it: a blob it read that was
// not cached is dropped after; one that was cached stays.
func TestScrubLeavesThePageCache(t *testing.T) {
	ctx := context.Background()
	s, dir := newStore(t)
	cold, hot := content(1, 1<<20), content(2, 1<<20)
	for _, b := range [][]byte{cold, hot} {
		if err := commit(ctx, s, b); err != nil {
			t.Fatal(err)
		}
	}
	coldPath, hotPath := blobFile(dir, digest.FromBytes(cold)), blobFile(dir, digest.FromBytes(hot))
	f, err := os.Open(coldPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if b, err := os.ReadFile(hotPath); err != nil || len(b) != len(hot) {
		t.Fatal(err)
	}
	if c, h := cached(t, coldPath), cached(t, hotPath); c != 0 || h == 0 {
		t.Fatalf("before the scrub: %d pages of the cold blob cached, %d of the hot one; want 0 and all", c, h)
	}
	if rep := Run(ctx, Deps{Self: "n1", Blobs: s}, Options{}); rep.Checked != 2 || len(rep.Bad) != 0 || rep.Error != "" {
		t.Fatalf("%+v", rep)
	}
	if c, h := cached(t, coldPath), cached(t, hotPath); c != 0 || h != (1<<20)/uint64(os.Getpagesize()) {
		t.Fatalf("after the scrub: %d pages of the cold blob cached, %d of the hot one; want 0 and all %d", c, h, (1<<20)/os.Getpagesize())
	}
}

package metadb

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A backup taken while writes go on opens as a store that holds every
// write committed before it began, passes Verify, and is as long as it
// said; a damaged copy fails Verify with ErrCorrupt.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(filepath.Join(dir, "meta.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 200 {
		must(t, s.PutManifest(ctx, "before", manifest(fmt.Sprint("b", i), ""), fmt.Sprint("t", i)))
	}
	var (
		stop    atomic.Bool
		wg      sync.WaitGroup
		written atomic.Int64
	)
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			if err := s.PutManifest(ctx, "during", manifest(fmt.Sprint("d", i), ""), fmt.Sprint("t", i)); err != nil {
				t.Error(err)
				return
			}
			written.Add(1)
		}
	})
	for written.Load() < 20 && !t.Failed() { // the copy starts with writes under way
		time.Sleep(time.Millisecond)
	}
	path := filepath.Join(dir, "backup.db")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var said int64
	n, err := s.Backup(f, func(size int64) { said = size })
	stop.Store(true)
	wg.Wait()
	must(t, errors.Join(err, f.Close()))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if n != said || fi.Size() != n {
		t.Fatalf("Backup wrote %d bytes, said %d, the file holds %d", n, said, fi.Size())
	}
	if err := Verify(path); err != nil {
		t.Fatalf("Verify(backup) = %v", err)
	}
	b, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 200 {
		if d, err := b.Tag("before", fmt.Sprint("t", i)); err != nil || d.String() != manifest(fmt.Sprint("b", i), "").Descriptor.Digest.String() {
			t.Fatalf("the backup lacks before:t%d (%s, %v)", i, d, err)
		}
	}
	tags, err := b.Tags("during", "", 0)
	must(t, errors.Join(err, b.Close()))
	during := len(tags)
	if during < 20 || int64(during) > written.Load() {
		t.Errorf("the backup holds %d of the %d writes made while it ran, want at least the 20 before it began", during, written.Load())
	}
	t.Logf("backup of %d bytes, with %d of %d writes made alongside", n, during, written.Load())

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.db")
	must(t, os.WriteFile(short, raw[:len(raw)/2], 0o600))
	if err := Verify(short); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify(a copy cut short) = %v, want ErrCorrupt", err)
	}
	for off := 2 * 4096; off+16 <= len(raw); off += 4096 {
		copy(raw[off:], "\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef\xde\xad\xbe\xef")
	}
	bad := filepath.Join(dir, "bad.db")
	must(t, os.WriteFile(bad, raw, 0o600))
	if err := Verify(bad); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Verify(a damaged copy) = %v, want ErrCorrupt", err)
	}
}

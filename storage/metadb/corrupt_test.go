package metadb

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// A database with a page that is not what the tree says (a bad sector, a
// copy taken mid-write) fails Open with ErrCorrupt, whichever page it is,
// instead of panicking in bbolt, now or on a later read: each page in use
// (branch, leaf, free list) is corrupted in a copy of its own.
func TestOpenCorrupt(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.db")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	for i := range 300 {
		must(t, s.PutManifest(ctx, fmt.Sprintf("r%d", i%7), manifest(fmt.Sprint(i, pad), ""), fmt.Sprint("t", i)))
	}
	must(t, s.Close())
	pages, size := pagesInUse(t, path)
	kinds := map[string]int{}
	for id, kind := range pages {
		kinds[kind]++
		copyPath := filepath.Join(dir, fmt.Sprintf("page%d.db", id))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 2 { // the page's header: id, flags, count, overflow
			binary.LittleEndian.PutUint64(b[id*size+8*i:], 0xdeadbeefdeadbeef)
		}
		if err := os.WriteFile(copyPath, b, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(copyPath, Options{})
		if !errors.Is(err, ErrCorrupt) {
			if err == nil {
				_ = s.Close()
			}
			t.Errorf("%s page %d corrupt: Open = %v, want ErrCorrupt", kind, id, err)
		}
	}
	last := 0
	for id := range pages {
		last = max(last, id)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "short.db") // cut short of its last page in use
	if err := os.WriteFile(short, b[:last*size], 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(short, Options{}); !errors.Is(err, ErrCorrupt) {
		if err == nil {
			_ = s.Close()
		}
		t.Errorf("file cut short of page %d (a %s): Open = %v, want ErrCorrupt", last, pages[last], err)
	}
	if kinds["branch"] == 0 || kinds["leaf"] < 10 || kinds["freelist"] == 0 {
		t.Fatalf("pages in use %v: the test wants branches, leaves and a free list", kinds)
	}
	t.Logf("corrupted each of %d pages in turn: %v", len(pages), kinds)
	s, err = Open(path, Options{}) // the file itself was never touched
	if err != nil {
		t.Fatal(err)
	}
	must(t, s.Close())
}

// pagesInUse returns the kind of every page of the database at path but
// its two meta pages and its free ones, by id, and the page size.
func pagesInUse(t *testing.T, path string) (map[int]string, int) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, PreLoadFreelist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pages := map[int]string{}
	err = db.View(func(tx *bolt.Tx) error {
		for id := 2; ; id++ {
			info, err := tx.Page(id)
			if err != nil {
				return err
			}
			if info == nil {
				return nil
			}
			if info.Type != "free" {
				pages[id] = info.Type
			}
			id += info.OverflowCount
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return pages, db.Info().PageSize
}

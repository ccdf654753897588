package filesystem

import (
	"os"
	"testing"

	"github.com/atollhq/atoll/storage/storagetest"
)

func TestSuite(t *testing.T) {
	storagetest.BlobStore(t, func(t *testing.T) storagetest.Backend {
		s, err := New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return storagetest.Backend{Store: s, Leftovers: func() []string {
			entries, _ := os.ReadDir(s.uploadsDir())
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			return names
		}}
	})
}

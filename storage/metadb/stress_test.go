package metadb

import (
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/storage"
)

// TestIndexMatchesDisk: the invariant of the in-memory index is that it is
// what loading the database gives. Writers push, retag, delete and
// collect while readers read through the cache; then the live index must
// equal the one a fresh Open rebuilds, and every linked manifest must read
// back whole.
func TestIndexMatchesDisk(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metadata.db")
	s, err := Open(path, Options{Reserve: -1, NoSync: true, Config: Config{CacheSize: 8 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 4, 150
	base := manifest("base", "")
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(2)
		go func() { // writer
			defer wg.Done()
			for i := range rounds {
				repo := fmt.Sprintf("r%d", (w+i)%3)
				m := manifest(fmt.Sprintf("m%d", i%7), "")
				if i%5 == 0 {
					m = manifest(fmt.Sprintf("ref%d", i%4), base.Descriptor.Digest)
				}
				var err error
				switch i % 6 {
				case 0, 1, 2:
					err = s.PutManifest(ctx, repo, m, fmt.Sprintf("t%d", i%4))
				case 3:
					err = s.DeleteManifest(ctx, repo, m.Descriptor.Digest)
				case 4:
					err = s.LinkBlob(ctx, repo, digest.FromString(fmt.Sprint(i%5)), int64(i))
				default:
					_, err = s.CollectManifests(ctx, 0, false)
				}
				if err != nil && !isUnknown(err) {
					errs <- err
				}
			}
		}()
		go func() { // reader
			defer wg.Done()
			for i := range rounds * 2 {
				repo := fmt.Sprintf("r%d", i%3)
				m := manifest(fmt.Sprintf("m%d", i%7), "")
				if got, err := s.Manifest(repo, m.Descriptor.Digest); err == nil && string(got.Content) != string(m.Content) {
					errs <- fmt.Errorf("read %s: %q", m.Descriptor.Digest, got.Content)
				}
				_ = s.Referrers(repo, base.Descriptor.Digest)
				_ = s.BlobRepos(digest.FromString(fmt.Sprint(i % 5)))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	live := snapshotIndex(s)
	for repo, ds := range live.links {
		for _, d := range ds {
			if _, err := s.Manifest(repo, d); err != nil {
				t.Errorf("linked %s in %s: %v", d, repo, err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{Reserve: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if loaded := snapshotIndex(s); !reflect.DeepEqual(live, loaded) {
		t.Errorf("the live index differs from the loaded one:\nlive   %+v\nloaded %+v", live, loaded)
	}
}

func isUnknown(err error) bool { return errors.Is(err, storage.ErrManifestUnknown) }

// indexView is the comparable content of a state.
type indexView struct {
	names     []string
	tags      map[string]map[string]digest.Digest
	links     map[string][]digest.Digest
	blobs     map[string]map[digest.Digest]int64
	referrers map[string]map[digest.Digest][]digest.Digest
	records   map[digest.Digest]string
	blobRepos map[digest.Digest][]string
}

func snapshotIndex(s *Store) indexView {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v := indexView{names: append([]string(nil), s.st.repos.names...), tags: map[string]map[string]digest.Digest{},
		links: map[string][]digest.Digest{}, blobs: map[string]map[digest.Digest]int64{},
		referrers: map[string]map[digest.Digest][]digest.Digest{}, records: map[digest.Digest]string{}, blobRepos: map[digest.Digest][]string{}}
	for name, r := range s.st.repos.byName {
		v.blobs[name] = map[digest.Digest]int64{}
		for k, size := range r.blobs {
			d := s.st.digestOf(k)
			v.blobs[name][d] = size
			v.blobRepos[d] = append(v.blobRepos[d], name)
		}
		v.tags[name] = map[string]digest.Digest{}
		r.tags.each(func(t []byte, k dkey) bool {
			v.tags[name][string(t)] = s.st.digestOf(k)
			return true
		})
		for k := range r.manifests {
			v.links[name] = append(v.links[name], s.st.digestOf(k))
		}
		sortDigests(v.links[name])
		v.referrers[name] = map[digest.Digest][]digest.Digest{}
		for _, ref := range r.referrers {
			subject := s.st.digestOf(ref.subject)
			v.referrers[name][subject] = append(v.referrers[name][subject], s.st.digestOf(ref.manifest))
		}
		for subject := range v.referrers[name] {
			sortDigests(v.referrers[name][subject])
		}
	}
	for _, names := range v.blobRepos {
		slices.Sort(names)
	}
	for k, rec := range s.st.records {
		var repos []string
		s.st.eachRepo(k, rec, func(r *repo) bool { repos = append(repos, r.name); return false })
		slices.Sort(repos)
		v.records[s.st.digestOf(k)] = fmt.Sprintf("stored=%v size=%d subject=%v/%x repos=%v desc=%v",
			rec.stored, rec.size, rec.hasSubject, rec.subject, repos, descString(s.st, k))
	}
	return v
}

func sortDigests(ds []digest.Digest) { slices.Sort(ds) }

// descString is what the index holds of the descriptor of the manifest of
// key k.
func descString(st *state, k dkey) string {
	d, ok := st.descOf(k)
	if !ok {
		return "none"
	}
	return fmt.Sprintf("%+v", d)
}

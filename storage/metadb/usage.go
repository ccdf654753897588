package metadb

import (
	"github.com/opencontainers/go-digest"
)

// Usage is what a set of repositories holds, each blob and manifest
// counted once however many of them link it.
type Usage struct {
	// Bytes is the sum of the sizes of the distinct blobs and manifests.
	Bytes int64 `json:"bytes"`
	// Blobs and Manifests count the distinct digests linked.
	Blobs     int `json:"blobs"`
	Manifests int `json:"manifests"`
}

// Usage returns what the repositories match accepts hold together, and
// what each of them holds on its own. Blob links made without a size
// count 0 bytes. It reads memory only.
func (s *usageIndex) Usage(match func(repo string) bool) (total Usage, repos map[string]Usage) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	repos = map[string]Usage{}
	blobs := map[dkey]bool{}
	manifests := map[dkey]bool{}
	for _, name := range s.st.repos.names {
		if !match(name) {
			continue
		}
		r := s.st.repos.byName[name]
		var u Usage
		for d, size := range r.blobs {
			u.Bytes += size
			u.Blobs++
			if !blobs[d] {
				blobs[d] = true
				total.Bytes += size
				total.Blobs++
			}
		}
		for k := range r.manifests {
			size := s.st.records[k].size
			u.Bytes += size
			u.Manifests++
			if !manifests[k] {
				manifests[k] = true
				total.Bytes += size
				total.Manifests++
			}
		}
		repos[name] = u
	}
	return total, repos
}

// Holds reports whether some repository match accepts links blob or
// manifest d: adding it there again takes no room.
func (s *usageIndex) Holds(match func(repo string) bool, d digest.Digest) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, _ := keyOf(d)
	if s.st.repos.eachHolder(s.st.blobs[k], s.st.blobShared, k, func(r *repo) bool { return match(r.name) }) {
		return true
	}
	return s.st.eachRepo(k, s.st.records[k], func(r *repo) bool { return match(r.name) })
}

// BlobSize returns the size recorded with any link of blob d.
func (s *usageIndex) BlobSize(d digest.Digest) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	k, _ := keyOf(d)
	var size int64
	found := s.st.repos.eachHolder(s.st.blobs[k], s.st.blobShared, k, func(r *repo) bool {
		size = r.blobs[k]
		return size > 0
	})
	return size, found
}

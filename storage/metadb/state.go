package metadb

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/storage/metalog"
)

// state is the in-memory index of the live (not deleted) keys of the meta
// bucket: names, tags, links, and of each manifest record what a read
// needs without its bytes (size, media type, subject). Manifest bytes stay
// on disk and are read through the store's cache (cache.go). It is
// guarded by Store.mu.
type state struct {
	records map[digest.Digest]*record
	repos   map[string]*repo
	// names are the keys of repos, sorted, but for those created since
	// the last sortNames, which are in added: apply leaves the sorting
	// to one merge at the end of a commit (or of the load), as inserting
	// each new name costs a move of all the names after it. Outside of
	// a commit, added is empty.
	names []string
	added []string
	// blobRepos lists, sorted, the repositories that link each blob.
	blobRepos map[digest.Digest][]string
	// pins are the digests immutable tags were first bound to, by
	// pinKey(repo, tag); they outlive the tag (pin.go).
	pins map[string]digest.Digest
	// mediaTypes interns media types: a million manifests share a
	// handful of them.
	mediaTypes map[string]string
}

// A record is the index entry of manifest digest d: what its record says,
// when there is one (stored), and the repositories that link d.
type record struct {
	digest    digest.Digest // the one copy the index keys share
	stored    bool
	size      int64  // len(Content)
	mediaType string // interned
	subject   digest.Digest
	// desc is the manifest's descriptor as the referrers API lists it,
	// kept only for a manifest with a subject.
	desc *v1.Descriptor
	// repos link d, sorted.
	repos []string
	// since is the stamp of the last write that left the record without
	// links (its own write, or the last link's deletion): garbage
	// collection counts its grace period from there.
	since uint64
}

type repo struct {
	name      string // the one copy the index shares
	tags      map[string]digest.Digest
	manifests map[digest.Digest]struct{}
	// blobs maps each linked blob to its size in bytes, 0 when the link
	// was made without one (before sizes were recorded, or by a cache).
	blobs map[digest.Digest]int64
	// referrers maps a subject to the linked manifests that refer to it.
	referrers map[digest.Digest]map[digest.Digest]struct{}
}

func (r *repo) empty() bool { return len(r.tags)+len(r.manifests)+len(r.blobs) == 0 }

func newState() *state {
	return &state{
		records:    map[digest.Digest]*record{},
		repos:      map[string]*repo{},
		blobRepos:  map[digest.Digest][]string{},
		pins:       map[string]digest.Digest{},
		mediaTypes: map[string]string{},
	}
}

// repo returns repository name, creating it when create is set.
func (s *state) repo(name string, create bool) *repo {
	r := s.repos[name]
	if r == nil && create {
		name = strings.Clone(name)
		r = &repo{
			name:      name,
			tags:      map[string]digest.Digest{},
			manifests: map[digest.Digest]struct{}{},
			blobs:     map[digest.Digest]int64{},
			referrers: map[digest.Digest]map[digest.Digest]struct{}{},
		}
		s.repos[name] = r
		s.added = append(s.added, name)
	}
	return r
}

// sortNames merges the names of the repositories created since it last
// ran into the sorted names.
func (s *state) sortNames() {
	if len(s.added) == 0 {
		return
	}
	slices.Sort(s.added)
	merged := make([]string, 0, len(s.names)+len(s.added))
	i, j := 0, 0
	for i < len(s.names) && j < len(s.added) {
		if s.names[i] < s.added[j] {
			merged = append(merged, s.names[i])
			i++
		} else {
			merged = append(merged, s.added[j])
			j++
		}
	}
	merged = append(append(merged, s.names[i:]...), s.added[j:]...)
	clear(s.added)
	s.names, s.added = merged, s.added[:0]
}

// intern returns the index's copy of a media type, keeping the first 256.
func (s *state) intern(mt string) string {
	if v, ok := s.mediaTypes[mt]; ok {
		return v
	}
	if len(s.mediaTypes) < 256 {
		s.mediaTypes[mt] = mt
	}
	return mt
}

// digest returns the index's copy of d when it has one: a million tags
// share the digests of the records they point at.
func (s *state) digest(d digest.Digest) digest.Digest {
	if rec := s.records[d]; rec != nil {
		return rec.digest
	}
	return d
}

// rec returns the index entry of manifest d, creating it.
func (s *state) rec(d digest.Digest) *record {
	rec := s.records[d]
	if rec == nil {
		d = digest.Digest(strings.Clone(string(d)))
		rec = &record{digest: d}
		s.records[d] = rec
	}
	return rec
}

// apply sets or deletes one key. A repository exists while it has keys.
func (s *state) apply(op metalog.Op) error {
	k, err := parseKeyString(op.Key)
	if err != nil {
		return err
	}
	if k.manifest != "" {
		return s.applyRecord(k.manifest, op)
	}
	if k.kind == kindPin {
		if op.Deleted {
			delete(s.pins, pinKey(k.repo, k.name))
		} else {
			s.pins[pinKey(k.repo, k.name)] = digest.Digest(op.Value)
		}
		return nil
	}
	r := s.repo(k.repo, !op.Deleted)
	if r == nil {
		return nil
	}
	d := digest.Digest(k.name)
	switch {
	case k.kind == kindTag && op.Deleted:
		delete(r.tags, k.name)
	case k.kind == kindTag:
		if _, ok := r.tags[k.name]; !ok {
			k.name = strings.Clone(k.name) // not the whole key
		}
		r.tags[k.name] = s.digest(digest.Digest(op.Value))
	case k.kind == kindManifest && op.Deleted:
		s.unlinkManifest(r, d, op.Stamp)
	case k.kind == kindManifest:
		s.linkManifest(r, d)
	case k.kind == kindBlob && op.Deleted:
		if _, ok := r.blobs[d]; ok {
			delete(r.blobs, d)
			s.blobRepos[d] = remove(s.blobRepos[d], r.name)
			if len(s.blobRepos[d]) == 0 {
				delete(s.blobRepos, d)
			}
		}
	case k.kind == kindBlob:
		if _, ok := r.blobs[d]; !ok {
			d = digest.Digest(strings.Clone(string(d)))
			s.blobRepos[d] = insert(s.blobRepos[d], r.name)
		}
		r.blobs[d] = linkSize(op.Value)
	}
	if r.empty() {
		delete(s.repos, k.repo)
		if i, ok := slices.BinarySearch(s.names, k.repo); ok {
			s.names = slices.Delete(s.names, i, i+1)
		} else if i := slices.Index(s.added, k.repo); i >= 0 {
			s.added = slices.Delete(s.added, i, i+1)
		}
	}
	return nil
}

// applyRecord sets or deletes the record of manifest d.
func (s *state) applyRecord(d digest.Digest, op metalog.Op) error {
	if op.Deleted {
		rec := s.records[d]
		if rec == nil {
			return nil
		}
		s.setSubject(rec, "", nil)
		if len(rec.repos) == 0 {
			delete(s.records, d)
			return nil
		}
		*rec = record{digest: rec.digest, repos: rec.repos} // links to nothing: unknown to reads
		return nil
	}
	m, err := decodeHead(op.Value)
	if err != nil {
		return fmt.Errorf("manifest record %s: %w", d, err)
	}
	rec := s.rec(d)
	rec.stored = true
	rec.size = m.Descriptor.Size
	rec.mediaType = s.intern(m.Descriptor.MediaType)
	rec.since = max(rec.since, op.Stamp)
	var desc *v1.Descriptor
	if m.Subject != "" {
		desc = &m.Descriptor
		desc.MediaType = rec.mediaType
	}
	s.setSubject(rec, m.Subject, desc)
	return nil
}

// setSubject moves the referrer entries of rec's linked manifests to
// subject.
func (s *state) setSubject(rec *record, subject digest.Digest, desc *v1.Descriptor) {
	for _, name := range rec.repos {
		r := s.repos[name]
		if rec.subject != "" {
			r.dropReferrer(rec.subject, rec.digest)
		}
		if subject != "" {
			r.addReferrer(subject, rec.digest)
		}
	}
	rec.subject, rec.desc = subject, desc
}

// unlinked notes a manifest link's tombstone found at load, key k stamped
// stamp: the record's grace period counts from the latest.
func (s *state) unlinked(k []byte, stamp uint64) {
	key, err := parseKey(k)
	if err != nil || key.kind != kindManifest {
		return
	}
	if rec := s.records[digest.Digest(key.name)]; rec != nil {
		rec.since = max(rec.since, stamp)
	}
}

func (s *state) linkManifest(r *repo, d digest.Digest) {
	if _, ok := r.manifests[d]; ok {
		return
	}
	rec := s.rec(d)
	r.manifests[rec.digest] = struct{}{}
	rec.repos = insert(rec.repos, r.name)
	if rec.subject != "" {
		r.addReferrer(rec.subject, rec.digest)
	}
}

func (s *state) unlinkManifest(r *repo, d digest.Digest, stamp uint64) {
	rec := s.records[d]
	if rec != nil {
		rec.since = max(rec.since, stamp)
	}
	if _, ok := r.manifests[d]; !ok {
		return
	}
	delete(r.manifests, d)
	if rec == nil {
		return
	}
	rec.repos = remove(rec.repos, r.name)
	if rec.subject != "" {
		r.dropReferrer(rec.subject, d)
	}
	if len(rec.repos) == 0 && !rec.stored {
		delete(s.records, d)
	}
}

func (r *repo) addReferrer(subject, d digest.Digest) {
	set := r.referrers[subject]
	if set == nil {
		set = map[digest.Digest]struct{}{}
		r.referrers[subject] = set
	}
	set[d] = struct{}{}
}

func (r *repo) dropReferrer(subject, d digest.Digest) {
	if set := r.referrers[subject]; set != nil {
		delete(set, d)
		if len(set) == 0 {
			delete(r.referrers, subject)
		}
	}
}

// insert adds name to the sorted list, once.
func insert(sorted []string, name string) []string {
	i, ok := slices.BinarySearch(sorted, name)
	if ok {
		return sorted
	}
	return slices.Insert(sorted, i, name)
}

// remove drops name from the sorted list.
func remove(sorted []string, name string) []string {
	if i, ok := slices.BinarySearch(sorted, name); ok {
		return slices.Delete(sorted, i, i+1)
	}
	return sorted
}

// page returns up to n of the sorted names after last (n <= 0: all).
func page(sorted []string, last string, n int) []string {
	i := sort.SearchStrings(sorted, last)
	if i < len(sorted) && sorted[i] == last {
		i++
	}
	out := sorted[i:]
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return slices.Clone(out)
}

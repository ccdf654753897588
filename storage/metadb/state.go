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
// needs without its bytes (size, subject). Manifest bytes stay on disk and
// are read through the store's cache (cache.go). It is guarded by
// Store.mu.
//
// The big maps (records, each repository's manifests) have keys and
// values without pointers (dkey.go), which the garbage collector does not
// scan; what has pointers is kept aside for the few manifests that need
// it (shared, descs.whole, odd).
type state struct {
	records map[dkey]record
	// repos are the repositories, by name and by id (repos.go).
	repos repoTable
	// shared lists, sorted, the repositories that link each manifest
	// linked by more than one (record.n > 1).
	shared map[dkey][]string
	// descs are the descriptors of the manifests with a subject, as the
	// referrers API lists them (descs.go).
	descs subjectDescs
	// odd maps the key of each digest that is not a canonical sha256 one
	// to its text. It only grows, by the few such digests written since
	// the store opened.
	odd map[dkey]digest.Digest
	// unsorted are the repositories whose referrers apply appended to
	// since the last settle.
	unsorted []*repo
	// blobs holds the repositories that link each blob; blobShared
	// lists them, sorted, for a blob more than one links.
	blobs      map[dkey]holders
	blobShared map[dkey][]string
	// pins are the digests immutable tags were first bound to, by
	// pinKey(repo, tag); they outlive the tag (pin.go).
	pins map[string]digest.Digest
}

// A record is the index entry of a manifest: what its record says, when
// there is one (stored), and how many repositories link it. It holds no
// pointers.
type record struct {
	stored     bool
	hasSubject bool
	// holders are the repositories that link the manifest (state.shared).
	holders
	size int64 // len(Content)
	// since is the stamp of the last write that left the record without
	// links (its own write, or the last link's deletion): garbage
	// collection counts its grace period from there.
	since   uint64
	subject dkey
}

func newState() *state {
	return &state{
		records:    map[dkey]record{},
		repos:      newRepoTable(),
		shared:     map[dkey][]string{},
		descs:      newSubjectDescs(),
		odd:        map[dkey]digest.Digest{},
		blobs:      map[dkey]holders{},
		blobShared: map[dkey][]string{},
		pins:       map[string]digest.Digest{},
	}
}

// key returns the key of d, noting the text of a digest that is not a
// canonical sha256 one. Reads use keyOf: a digest never written is not
// in the index anyway.
func (s *state) key(d digest.Digest) dkey {
	k, plain := keyOf(d)
	if !plain {
		if _, ok := s.odd[k]; !ok {
			s.odd[k] = digest.Digest(strings.Clone(string(d)))
		}
	}
	return k
}

// digestOf returns the digest whose key is k.
func (s *state) digestOf(k dkey) digest.Digest {
	if len(s.odd) > 0 {
		if d, ok := s.odd[k]; ok {
			return d
		}
	}
	return k.format()
}

// eachRepo calls fn with each repository that links the manifest of key
// k, whose record is rec, until fn returns true; it reports whether fn
// did.
func (s *state) eachRepo(k dkey, rec record, fn func(*repo) bool) bool {
	return s.repos.eachHolder(rec.holders, s.shared, k, fn)
}

// links reports whether repository name links the manifest of key k,
// from the manifest's holders: one lookup in one map of every manifest,
// where the repository's own set (repo.manifests) is four objects apart
// in a heap of hundreds of megabytes, each a cache and TLB miss (at a
// million manifests the lookup took 2.5 us a GET, the whole of a read
// that hits the cache three times over). Whether the record is stored is
// not looked at: a link whose record has not arrived finds none on disk
// either.
func (s *state) links(name string, k dkey) bool {
	rec, ok := s.records[k]
	return ok && s.repos.holds(rec.holders, s.shared, k, name)
}

// settle sorts what apply left unsorted: names and referrers. Every
// load, commit and install ends with it, before readers see the state.
func (s *state) settle() {
	s.repos.sortNames()
	s.sortReferrers()
}

// descOf returns the descriptor of the manifest of key k, if it has a
// subject.
func (s *state) descOf(k dkey) (v1.Descriptor, bool) {
	return s.descs.get(k, s.digestOf, s.records[k].size)
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
	r := s.repos.get(k.repo, !op.Deleted)
	if r == nil {
		return nil
	}
	d := digest.Digest(k.name)
	switch {
	case k.kind == kindTag && op.Deleted:
		r.tags.remove(k.name)
	case k.kind == kindTag:
		r.tags.set(k.name, s.key(digest.Digest(op.Value)))
	case k.kind == kindManifest && op.Deleted:
		s.unlinkManifest(r, d, op.Stamp)
	case k.kind == kindManifest:
		s.linkManifest(r, d)
	case k.kind == kindBlob && op.Deleted:
		bk, _ := keyOf(d)
		if _, ok := r.blobs[bk]; ok {
			delete(r.blobs, bk)
			if h := s.repos.release(s.blobs[bk], s.blobShared, bk, r); h.n > 0 {
				s.blobs[bk] = h
			} else {
				delete(s.blobs, bk)
			}
		}
	case k.kind == kindBlob:
		bk := s.key(d)
		if _, ok := r.blobs[bk]; !ok {
			s.blobs[bk] = s.repos.hold(s.blobs[bk], s.blobShared, bk, r)
		}
		r.blobs[bk] = linkSize(op.Value)
	}
	if r.empty() {
		s.repos.drop(r)
	}
	return nil
}

// applyRecord sets or deletes the record of manifest d.
func (s *state) applyRecord(d digest.Digest, op metalog.Op) error {
	if op.Deleted {
		k, _ := keyOf(d)
		rec, ok := s.records[k]
		if !ok {
			return nil
		}
		s.setSubject(k, &rec, "", nil)
		if rec.n == 0 {
			delete(s.records, k)
			return nil
		}
		s.records[k] = record{holders: rec.holders} // links to nothing: unknown to reads
		return nil
	}
	m, err := decodeHead(op.Value)
	if err != nil {
		return fmt.Errorf("manifest record %s: %w", d, err)
	}
	k := s.key(d)
	rec := s.records[k]
	rec.stored = true
	rec.size = m.Descriptor.Size
	rec.since = max(rec.since, op.Stamp)
	var desc *v1.Descriptor
	if m.Subject != "" {
		desc = &m.Descriptor
	}
	s.setSubject(k, &rec, m.Subject, desc)
	s.records[k] = rec
	return nil
}

// setSubject moves the referrer entries of the linked manifest of key k,
// whose record is rec, to subject ("": none), described by desc.
func (s *state) setSubject(k dkey, rec *record, subject digest.Digest, desc *v1.Descriptor) {
	var sk dkey
	if subject != "" {
		sk = s.key(subject)
	}
	s.eachRepo(k, *rec, func(r *repo) bool {
		if rec.hasSubject {
			s.dropReferrer(r, rec.subject, k)
		}
		if subject != "" {
			s.addReferrer(r, sk, k)
		}
		return false
	})
	rec.subject, rec.hasSubject = sk, subject != ""
	s.descs.drop(k)
	if desc != nil {
		s.descs.put(k, rec.size, desc)
	}
}

// unlinked notes a manifest link's tombstone found at load, key k stamped
// stamp: the record's grace period counts from the latest.
func (s *state) unlinked(k []byte, stamp uint64) {
	key, err := parseKey(k)
	if err != nil || key.kind != kindManifest {
		return
	}
	dk, _ := keyOf(digest.Digest(key.name))
	if rec, ok := s.records[dk]; ok && stamp > rec.since {
		rec.since = stamp
		s.records[dk] = rec
	}
}

func (s *state) linkManifest(r *repo, d digest.Digest) {
	k := s.key(d)
	if _, ok := r.manifests[k]; ok {
		return
	}
	r.manifests[k] = struct{}{}
	rec := s.records[k]
	rec.holders = s.repos.hold(rec.holders, s.shared, k, r)
	if rec.hasSubject {
		s.addReferrer(r, rec.subject, k)
	}
	s.records[k] = rec
}

func (s *state) unlinkManifest(r *repo, d digest.Digest, stamp uint64) {
	k, _ := keyOf(d)
	rec, ok := s.records[k]
	if ok && stamp > rec.since {
		rec.since = stamp
		s.records[k] = rec
	}
	if _, linked := r.manifests[k]; !linked {
		return
	}
	delete(r.manifests, k)
	if !ok {
		return
	}
	rec.holders = s.repos.release(rec.holders, s.shared, k, r)
	if rec.hasSubject {
		s.dropReferrer(r, rec.subject, k)
	}
	if rec.n == 0 && !rec.stored {
		delete(s.records, k)
		return
	}
	s.records[k] = rec
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

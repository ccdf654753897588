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
	repos   map[string]*repo
	// byID holds each repository by its id; nil for a free id, which
	// free lists for reuse. nameByID holds their names as links compares
	// them (idname.go).
	byID     []*repo
	nameByID []idName
	free     []uint32
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
	// names are the keys of repos, sorted, but for those created since
	// the last sortNames, which are in added: apply leaves the sorting
	// to one merge at the end of a commit (or of the load), as inserting
	// each new name costs a move of all the names after it. Outside of
	// a commit, added is empty.
	names []string
	added []string
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

// holders are the repositories that link a digest: n counts them, repo
// is the id of the one when n == 1, and a map beside (state.shared,
// state.blobShared) lists them, sorted, when n > 1.
type holders struct {
	n    uint32
	repo uint32
}

// hold adds r to the holders h of key k, whose list when shared is in
// shared; r must not hold k yet.
func (s *state) hold(h holders, shared map[dkey][]string, k dkey, r *repo) holders {
	switch h.n {
	case 0:
		h.repo = r.id
	case 1:
		shared[k] = insert([]string{s.byID[h.repo].name}, r.name)
	default:
		shared[k] = insert(shared[k], r.name)
	}
	h.n++
	return h
}

// release drops r from the holders h of key k, which it is one of.
func (s *state) release(h holders, shared map[dkey][]string, k dkey, r *repo) holders {
	switch h.n {
	case 1:
		h.repo = 0
	case 2:
		rest := remove(shared[k], r.name)
		delete(shared, k)
		h.repo = s.repos[rest[0]].id
	default:
		shared[k] = remove(shared[k], r.name)
	}
	h.n--
	return h
}

// eachHolder calls fn with each of the holders h of key k until fn
// returns true; it reports whether fn did.
func (s *state) eachHolder(h holders, shared map[dkey][]string, k dkey, fn func(*repo) bool) bool {
	switch h.n {
	case 0:
		return false
	case 1:
		return fn(s.byID[h.repo])
	}
	for _, name := range shared[k] {
		if fn(s.repos[name]) {
			return true
		}
	}
	return false
}

type repo struct {
	name      string // the one copy the index shares
	id        uint32 // its index in state.byID
	tags      tagSet
	manifests map[dkey]struct{}
	// blobs maps each linked blob to its size in bytes, 0 when the link
	// was made without one (before sizes were recorded, or by a cache).
	blobs map[dkey]int64
	// referrers are the linked manifests that refer to a subject, sorted
	// but for those appended since the last settle, when unsorted is set
	// (referrers.go).
	referrers []referrer
	unsorted  bool
}

func (r *repo) empty() bool { return r.tags.len()+len(r.manifests)+len(r.blobs) == 0 }

func newState() *state {
	return &state{
		records:    map[dkey]record{},
		repos:      map[string]*repo{},
		shared:     map[dkey][]string{},
		descs:      newSubjectDescs(),
		odd:        map[dkey]digest.Digest{},
		blobs:      map[dkey]holders{},
		blobShared: map[dkey][]string{},
		pins:       map[string]digest.Digest{},
	}
}

// repo returns repository name, creating it when create is set.
func (s *state) repo(name string, create bool) *repo {
	r := s.repos[name]
	if r == nil && create {
		name = strings.Clone(name)
		r = &repo{
			name:      name,
			manifests: map[dkey]struct{}{},
			blobs:     map[dkey]int64{},
		}
		if n := len(s.free); n > 0 {
			r.id, s.free = s.free[n-1], s.free[:n-1]
			s.byID[r.id], s.nameByID[r.id] = r, nameOfID(name)
		} else {
			r.id = uint32(len(s.byID))
			s.byID, s.nameByID = append(s.byID, r), append(s.nameByID, nameOfID(name))
		}
		s.repos[name] = r
		s.added = append(s.added, name)
	}
	return r
}

// dropRepo forgets empty repository r.
func (s *state) dropRepo(r *repo) {
	delete(s.repos, r.name)
	s.byID[r.id], s.nameByID[r.id] = nil, idName{freeID}
	s.free = append(s.free, r.id)
	if i, ok := slices.BinarySearch(s.names, r.name); ok {
		s.names = slices.Delete(s.names, i, i+1)
	} else if i := slices.Index(s.added, r.name); i >= 0 {
		s.added = slices.Delete(s.added, i, i+1)
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
	return s.eachHolder(rec.holders, s.shared, k, fn)
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
	if !ok {
		return false
	}
	switch rec.n {
	case 0:
		return false
	case 1:
		if eq, known := s.nameByID[rec.repo].is(name); known {
			return eq
		}
		r := s.byID[rec.repo]
		return r != nil && r.name == name
	}
	_, found := slices.BinarySearch(s.shared[k], name)
	return found
}

// settle sorts what apply left unsorted: names and referrers. Every
// load, commit and install ends with it, before readers see the state.
func (s *state) settle() {
	s.sortNames()
	s.sortReferrers()
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
	r := s.repo(k.repo, !op.Deleted)
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
			if h := s.release(s.blobs[bk], s.blobShared, bk, r); h.n > 0 {
				s.blobs[bk] = h
			} else {
				delete(s.blobs, bk)
			}
		}
	case k.kind == kindBlob:
		bk := s.key(d)
		if _, ok := r.blobs[bk]; !ok {
			s.blobs[bk] = s.hold(s.blobs[bk], s.blobShared, bk, r)
		}
		r.blobs[bk] = linkSize(op.Value)
	}
	if r.empty() {
		s.dropRepo(r)
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
	rec.holders = s.hold(rec.holders, s.shared, k, r)
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
	rec.holders = s.release(rec.holders, s.shared, k, r)
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

package metadb

import (
	"slices"
	"strings"
)

// repoTable holds the index's repositories: by name, by id, and their
// names in order. It is part of state, guarded by Store.mu.
type repoTable struct {
	byName map[string]*repo
	// byID holds each repository by its id; nil for a free id, which
	// free lists for reuse. nameByID holds their names as holds compares
	// them (idname.go).
	byID     []*repo
	nameByID []idName
	free     []uint32
	// names are the keys of byName, sorted, but for those created since
	// the last sortNames, which are in added: apply leaves the sorting to
	// one merge at the end of a commit (or of the load), as inserting
	// each new name costs a move of all the names after it. Outside of a
	// commit, added is empty.
	names []string
	added []string
}

type repo struct {
	name      string // the one copy the index shares
	id        uint32 // its index in repoTable.byID
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

// holders are the repositories that link a digest: n counts them, repo
// is the id of the one when n == 1, and a map beside (state.shared,
// state.blobShared) lists them, sorted, when n > 1.
type holders struct {
	n    uint32
	repo uint32
}

func newRepoTable() repoTable {
	return repoTable{byName: map[string]*repo{}}
}

// get returns repository name, creating it when create is set.
func (t *repoTable) get(name string, create bool) *repo {
	r := t.byName[name]
	if r == nil && create {
		name = strings.Clone(name)
		r = &repo{
			name:      name,
			manifests: map[dkey]struct{}{},
			blobs:     map[dkey]int64{},
		}
		if n := len(t.free); n > 0 {
			r.id, t.free = t.free[n-1], t.free[:n-1]
			t.byID[r.id], t.nameByID[r.id] = r, nameOfID(name)
		} else {
			r.id = uint32(len(t.byID))
			t.byID, t.nameByID = append(t.byID, r), append(t.nameByID, nameOfID(name))
		}
		t.byName[name] = r
		t.added = append(t.added, name)
	}
	return r
}

// drop forgets empty repository r.
func (t *repoTable) drop(r *repo) {
	delete(t.byName, r.name)
	t.byID[r.id], t.nameByID[r.id] = nil, idName{freeID}
	t.free = append(t.free, r.id)
	if i, ok := slices.BinarySearch(t.names, r.name); ok {
		t.names = slices.Delete(t.names, i, i+1)
	} else if i := slices.Index(t.added, r.name); i >= 0 {
		t.added = slices.Delete(t.added, i, i+1)
	}
}

// sortNames merges the names of the repositories created since it last
// ran into the sorted names.
func (t *repoTable) sortNames() {
	if len(t.added) == 0 {
		return
	}
	slices.Sort(t.added)
	merged := make([]string, 0, len(t.names)+len(t.added))
	i, j := 0, 0
	for i < len(t.names) && j < len(t.added) {
		if t.names[i] < t.added[j] {
			merged = append(merged, t.names[i])
			i++
		} else {
			merged = append(merged, t.added[j])
			j++
		}
	}
	merged = append(append(merged, t.names[i:]...), t.added[j:]...)
	clear(t.added)
	t.names, t.added = merged, t.added[:0]
}

// hold adds r to the holders h of key k, whose list when shared is in
// shared; r must not hold k yet.
func (t *repoTable) hold(h holders, shared map[dkey][]string, k dkey, r *repo) holders {
	switch h.n {
	case 0:
		h.repo = r.id
	case 1:
		shared[k] = insert([]string{t.byID[h.repo].name}, r.name)
	default:
		shared[k] = insert(shared[k], r.name)
	}
	h.n++
	return h
}

// release drops r from the holders h of key k, which it is one of.
func (t *repoTable) release(h holders, shared map[dkey][]string, k dkey, r *repo) holders {
	switch h.n {
	case 1:
		h.repo = 0
	case 2:
		rest := remove(shared[k], r.name)
		delete(shared, k)
		h.repo = t.byName[rest[0]].id
	default:
		shared[k] = remove(shared[k], r.name)
	}
	h.n--
	return h
}

// eachHolder calls fn with each of the holders h of key k until fn
// returns true; it reports whether fn did.
func (t *repoTable) eachHolder(h holders, shared map[dkey][]string, k dkey, fn func(*repo) bool) bool {
	switch h.n {
	case 0:
		return false
	case 1:
		return fn(t.byID[h.repo])
	}
	for _, name := range shared[k] {
		if fn(t.byName[name]) {
			return true
		}
	}
	return false
}

// holds reports whether the holders h of key k, whose list when shared is
// in shared, include repository name.
func (t *repoTable) holds(h holders, shared map[dkey][]string, k dkey, name string) bool {
	switch h.n {
	case 0:
		return false
	case 1:
		if eq, known := t.nameByID[h.repo].is(name); known {
			return eq
		}
		r := t.byID[h.repo]
		return r != nil && r.name == name
	}
	_, found := slices.BinarySearch(shared[k], name)
	return found
}

package metadb

import "slices"

// A tagSet maps a repository's tags to the keys of the manifests they
// name, sorted by tag, in memory the garbage collector does not scan:
// the names are packed in one byte slice and the entries hold offsets
// into it. At two million tags, a map[string]dkey per repository was most
// of the objects of the heap, and marking them most of the CPU of each
// collection, which a registry pays again with every collection its
// requests cause.
//
// Lookups are binary searches; an insert moves the entries after it
// (40 bytes each); a removed name's bytes are left in the text until they
// are half of it, then the text is packed. A tagSet is guarded by the
// store's locks like the rest of the state.
type tagSet struct {
	ents    []tagEnt // sorted by name
	text    []byte   // the names of ents, and garbage
	garbage int      // bytes of text no entry names
}

type tagEnt struct {
	off, n uint32 // the name is text[off:off+n]
	key    dkey
}

func (t *tagSet) name(e tagEnt) []byte { return t.text[e.off : e.off+e.n] }

// find returns the index of tag in ents, or where it would go.
func (t *tagSet) find(tag string) (int, bool) {
	return slices.BinarySearchFunc(t.ents, tag, func(e tagEnt, tag string) int {
		// string(b) in a comparison does not allocate (in a call it does).
		switch name := t.name(e); {
		case string(name) < tag:
			return -1
		case string(name) > tag:
			return 1
		}
		return 0
	})
}

func (t *tagSet) len() int { return len(t.ents) }

// get returns the key tag names.
func (t *tagSet) get(tag string) (dkey, bool) {
	if i, ok := t.find(tag); ok {
		return t.ents[i].key, true
	}
	return dkey{}, false
}

// set makes tag name k.
func (t *tagSet) set(tag string, k dkey) {
	i, ok := t.find(tag)
	if ok {
		t.ents[i].key = k
		return
	}
	e := tagEnt{off: uint32(len(t.text)), n: uint32(len(tag)), key: k}
	t.text = append(t.text, tag...)
	t.ents = slices.Insert(t.ents, i, e)
}

// remove drops tag, if present.
func (t *tagSet) remove(tag string) {
	i, ok := t.find(tag)
	if !ok {
		return
	}
	t.garbage += int(t.ents[i].n)
	t.ents = slices.Delete(t.ents, i, i+1)
	if len(t.ents) == 0 {
		*t = tagSet{}
		return
	}
	if t.garbage > len(t.text)/2 {
		t.pack()
	}
}

// pack copies the names of ents to a new text, without the garbage.
func (t *tagSet) pack() {
	text := make([]byte, 0, len(t.text)-t.garbage)
	for i := range t.ents {
		e := &t.ents[i]
		off := uint32(len(text))
		text = append(text, t.name(*e)...)
		e.off = off
	}
	t.text, t.garbage = text, 0
}

// each calls fn with each tag, in order, and its key, until fn returns
// false. tag is the set's own bytes: fn must not keep or modify it.
func (t *tagSet) each(fn func(tag []byte, k dkey) bool) {
	for _, e := range t.ents {
		if !fn(t.name(e), e.key) {
			return
		}
	}
}

// names returns the tags after last, in order, at most n of them (all
// when n <= 0).
func (t *tagSet) names(last string, n int) []string {
	i, ok := t.find(last)
	if ok {
		i++
	}
	rest := t.ents[i:]
	if n > 0 && len(rest) > n {
		rest = rest[:n]
	}
	out := make([]string, len(rest))
	for j, e := range rest {
		out[j] = string(t.name(e))
	}
	return out
}

package metadb

import (
	"strings"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// subjectDescs keeps the descriptors of the manifests with a subject, as
// the referrers API lists them. Nearly all have no fields but media type,
// digest, size and artifact type: those are kept plain, as two interned
// type numbers in a map without pointers (the digest is the key's, the
// size the record's); the others whole. At a million manifests, a tenth
// with a subject, keeping each descriptor whole (with its digest and the
// record's head it came in) was 300,000 of the 1.4 million objects each
// garbage collection marks.
type subjectDescs struct {
	plain map[dkey]plainDesc
	whole map[dkey]*v1.Descriptor
	// types and typeIDs intern the media and artifact types of plain;
	// types[0] is "".
	types   []string
	typeIDs map[string]uint16
}

// A plainDesc is a plain descriptor's types, indexes into
// subjectDescs.types.
type plainDesc struct{ mediaType, artifactType uint16 }

// maxTypes bounds the media and artifact types interned; descriptors of
// others are kept whole.
const maxTypes = 4096

func newSubjectDescs() subjectDescs {
	return subjectDescs{
		plain:   map[dkey]plainDesc{},
		whole:   map[dkey]*v1.Descriptor{},
		types:   []string{""},
		typeIDs: map[string]uint16{"": 0},
	}
}

// put keeps desc, the descriptor of the manifest of key k whose record
// says it is size bytes.
func (sd *subjectDescs) put(k dkey, size int64, desc *v1.Descriptor) {
	dk, canonical := keyOf(desc.Digest)
	if canonical && dk == k && desc.Size == size && len(desc.Annotations) == 0 && len(desc.URLs) == 0 &&
		desc.Platform == nil && len(desc.Data) == 0 {
		mt, ok1 := sd.typeID(desc.MediaType)
		at, ok2 := sd.typeID(desc.ArtifactType)
		if ok1 && ok2 {
			sd.plain[k] = plainDesc{mediaType: mt, artifactType: at}
			return
		}
	}
	d := *desc // not the record's head it points into
	sd.whole[k] = &d
}

// get returns the descriptor of the manifest of key k, whose digest is
// digestOf(k) and whose record says it is size bytes, if it has a
// subject.
func (sd *subjectDescs) get(k dkey, digestOf func(dkey) digest.Digest, size int64) (v1.Descriptor, bool) {
	if p, ok := sd.plain[k]; ok {
		return v1.Descriptor{MediaType: sd.types[p.mediaType], Digest: digestOf(k), Size: size,
			ArtifactType: sd.types[p.artifactType]}, true
	}
	if d := sd.whole[k]; d != nil {
		return *d, true
	}
	return v1.Descriptor{}, false
}

// drop forgets the descriptor of the manifest of key k.
func (sd *subjectDescs) drop(k dkey) {
	delete(sd.plain, k)
	delete(sd.whole, k)
}

// typeID returns the index of media or artifact type t in types, adding
// it; ok is false when maxTypes are there already.
func (sd *subjectDescs) typeID(t string) (id uint16, ok bool) {
	if id, ok := sd.typeIDs[t]; ok {
		return id, true
	}
	if len(sd.types) >= maxTypes {
		return 0, false
	}
	t = strings.Clone(t)
	id = uint16(len(sd.types))
	sd.types = append(sd.types, t)
	sd.typeIDs[t] = id
	return id, true
}

package metadb

// An idName is a repository's name as repoTable.holds compares it with the
// name a request gives: the name itself when it fits (byte 0 is its
// length, the name follows), else longName or freeID. Kept in a slice by
// repository id (repoTable.nameByID), it answers whether the one repository
// that links a manifest is the one asked about in one load, where the
// repository and then its name are two more, each a miss of the
// processor's caches and TLB at a hundred thousand repositories (at a
// million manifests BenchmarkLinks took 610-760 ns through the
// repository, 290-380 ns with the name inline). It holds no pointers.
type idName [32]byte

const (
	// longName marks a name longer than an idName holds: links compares
	// the repository's.
	longName = 0xfe
	// freeID marks an id no repository has.
	freeID = 0xff
)

func nameOfID(name string) idName {
	var n idName
	if len(n)-1 < len(name) {
		n[0] = longName
		return n
	}
	n[0] = byte(len(name))
	copy(n[1:], name)
	return n
}

// is reports whether n is name; known is false when n cannot tell (a
// long name).
func (n *idName) is(name string) (eq, known bool) {
	switch l := int(n[0]); {
	case l == freeID:
		return false, true
	case l == longName:
		return false, false
	default:
		return l == len(name) && string(n[1:1+l]) == name, true
	}
}

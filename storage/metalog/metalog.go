// Package metalog holds the records of the replicated metadata log: an Op
// sets or deletes one key, a Batch is one write numbered in the log of the
// member that took it, and a Vector says how far each origin's log has
// been applied. The metadata store writes them (storage/metadb), the
// transport carries them (peer) and replication moves them between members
// (node/metasync); this leaf is what lets all three share them while
// dependencies point one way.
package metalog

// Op sets or deletes one metadata key. Stamp is a hybrid logical clock
// reading: the entry with the greater (Stamp, Origin) wins, so every member
// that applied the same ops holds the same state in any order.
type Op struct {
	Key     string `json:"k"`
	Value   []byte `json:"v,omitempty"`
	Deleted bool   `json:"d,omitempty"`
	Stamp   uint64 `json:"t"`
	Origin  string `json:"o"`
}

// Batch is one metadata write: the ops of one request, numbered Seq in
// the log of the member that took it (Origin). Seq starts at 1 and has no
// gaps.
type Batch struct {
	Origin string `json:"origin"`
	Seq    uint64 `json:"seq"`
	Ops    []Op   `json:"ops"`
}

// Vector maps each origin to the highest Seq applied with no gap before it.
type Vector map[string]uint64

// Clone returns a copy of v.
func (v Vector) Clone() Vector {
	out := make(Vector, len(v))
	for k, n := range v {
		out[k] = n
	}
	return out
}

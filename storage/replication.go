package storage

import "context"

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

// Replicated is a metadata store that members keep in step. All methods
// may be called concurrently.
type Replicated interface {
	// Apply applies batches of other members durably. A batch already
	// applied is skipped; a batch past a gap in its origin's log is
	// skipped too, to be fetched again by anti-entropy.
	Apply(ctx context.Context, batches []Batch) error
	// Vector returns what this store has applied.
	Vector() Vector
	// Since returns up to limit batches of origin with Seq > seq, in order.
	Since(origin string, seq uint64, limit int) ([]Batch, error)
}

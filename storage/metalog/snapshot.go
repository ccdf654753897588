package metalog

// Chunk is one piece of a snapshot of a member's metadata: each key's
// latest op (tombstones included) in key order, read in pages so a large
// state travels in many small messages. A snapshot may be fuzzy: later
// chunks can hold ops newer than Vector, which is harmless because ops
// merge by last writer wins; Vector says what the state covers at least.
type Chunk struct {
	// Vector, on the first chunk only, is what the member had applied
	// when the snapshot began.
	Vector Vector
	// Entries are the keys after the requested one, in key order.
	Entries []Op
	// Next is the key to ask after for the next chunk; "" on the last.
	Next string
}

package metadb

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/atollhq/atoll/storage/metalog"
)

// A batch in the log bucket is stored in this binary form:
//
//	logV1 (1 byte)
//	uvarint length + origin
//	uvarint seq
//	uvarint number of ops, then each op:
//	  flags (1 byte): opDeleted, opInMeta, opOwnOrigin
//	  uvarint length + key
//	  stamp (8 bytes, big endian)
//	  unless opOwnOrigin: uvarint length + origin (else the batch's)
//	  unless opInMeta: uvarint length + value
//
// A manifest record's op that won its key when committed is stored
// opInMeta: without its value, which is the m/<digest> entry the same
// commit wrote. So a manifest's bytes are on disk once, in its record,
// and the log holds its key and stamp. Reading the batch back (Since)
// takes the value from the entry: if a later op replaced it with another
// record of the same digest (the same content, content addressing says),
// that record's value; if a later op deleted it, or the entry is gone,
// the op reads back as a tombstone at its own stamp, which merges (last
// writer wins) to the state the later deletion leaves wherever it lands.
// Batches logged before were JSON (they start with '{'); both decode.
const logV1 = 0x01

const (
	opDeleted = 1 << iota
	opInMeta
	opOwnOrigin
)

// encodeBatch returns the stored form of b; inMeta[i] says that op i's
// value is its entry's in the meta bucket, committed with it.
func encodeBatch(b metalog.Batch, inMeta []bool) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + len(b.Origin)
	for _, op := range b.Ops {
		n += 1 + 3*binary.MaxVarintLen32 + 8 + len(op.Key) + len(op.Origin) + len(op.Value)
	}
	out := make([]byte, 0, n)
	out = append(out, logV1)
	out = appendString(out, b.Origin)
	out = binary.AppendUvarint(out, b.Seq)
	out = binary.AppendUvarint(out, uint64(len(b.Ops)))
	for i, op := range b.Ops {
		var flags byte
		if op.Deleted {
			flags |= opDeleted
		}
		if inMeta[i] {
			flags |= opInMeta
		}
		if op.Origin == b.Origin {
			flags |= opOwnOrigin
		}
		out = append(out, flags)
		out = appendString(out, op.Key)
		out = binary.BigEndian.AppendUint64(out, op.Stamp)
		if flags&opOwnOrigin == 0 {
			out = appendString(out, op.Origin)
		}
		if flags&opInMeta == 0 {
			out = appendString(out, string(op.Value))
		}
	}
	return out
}

// decodeBatch decodes stored batch v, taking the values stored opInMeta
// from meta (see encodeBatch).
func decodeBatch(meta *bolt.Bucket, v []byte) (metalog.Batch, error) {
	var b metalog.Batch
	if len(v) == 0 || v[0] != logV1 {
		err := json.Unmarshal(v, &b)
		return b, err
	}
	r := reader{b: v[1:]}
	b.Origin = string(r.bytes())
	b.Seq = r.uvarint()
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		return b, fmt.Errorf("log batch cut short")
	}
	b.Ops = make([]metalog.Op, 0, n)
	for range n {
		if len(r.b) < 1 {
			return b, fmt.Errorf("log batch cut short")
		}
		flags := r.b[0]
		r.b = r.b[1:]
		op := metalog.Op{Key: string(r.bytes()), Deleted: flags&opDeleted != 0, Origin: b.Origin}
		if len(r.b) < 8 {
			return b, fmt.Errorf("log batch cut short")
		}
		op.Stamp = binary.BigEndian.Uint64(r.b)
		r.b = r.b[8:]
		if flags&opOwnOrigin == 0 {
			op.Origin = string(r.bytes())
		}
		if flags&opInMeta != 0 {
			if err := valueFromMeta(meta, &op); err != nil {
				return b, err
			}
		} else if v := r.bytes(); len(v) > 0 {
			op.Value = append([]byte(nil), v...)
		}
		if r.err != nil {
			return b, fmt.Errorf("log batch: %w", r.err)
		}
		b.Ops = append(b.Ops, op)
	}
	return b, nil
}

// valueFromMeta sets the value of op, logged opInMeta, from its entry.
func valueFromMeta(meta *bolt.Bucket, op *metalog.Op) error {
	cur := meta.Get([]byte(op.Key))
	if cur == nil {
		op.Deleted = true
		return nil
	}
	e, err := decodeEntry(cur)
	if err != nil {
		return fmt.Errorf("key %q: %w", op.Key, err)
	}
	if e.deleted {
		op.Deleted = true
		return nil
	}
	op.Value = append([]byte(nil), e.value...)
	return nil
}

package peer

import (
	"github.com/atollhq/atoll/peer/peerpb"
	"github.com/atollhq/atoll/storage/metalog"
)

// Conversions between storage's metadata types and their wire form.

func batchesToPB(bs []metalog.Batch) []*peerpb.Batch {
	out := make([]*peerpb.Batch, len(bs))
	for i, b := range bs {
		ops := make([]*peerpb.Op, len(b.Ops))
		for j, op := range b.Ops {
			ops[j] = &peerpb.Op{Key: op.Key, Value: op.Value, Deleted: op.Deleted, Stamp: op.Stamp, Origin: op.Origin}
		}
		out[i] = &peerpb.Batch{Origin: b.Origin, Seq: b.Seq, Ops: ops}
	}
	return out
}

func batchesFromPB(bs []*peerpb.Batch) []metalog.Batch {
	out := make([]metalog.Batch, len(bs))
	for i, b := range bs {
		ops := make([]metalog.Op, len(b.GetOps()))
		for j, op := range b.GetOps() {
			ops[j] = metalog.Op{Key: op.GetKey(), Value: op.GetValue(), Deleted: op.GetDeleted(), Stamp: op.GetStamp(), Origin: op.GetOrigin()}
		}
		out[i] = metalog.Batch{Origin: b.GetOrigin(), Seq: b.GetSeq(), Ops: ops}
	}
	return out
}

func vectorToPB(v metalog.Vector) *peerpb.Vector {
	seqs := make(map[string]uint64, len(v))
	for origin, seq := range v {
		seqs[origin] = seq
	}
	return &peerpb.Vector{Seqs: seqs}
}

func vectorFromPB(v *peerpb.Vector) metalog.Vector {
	out := make(metalog.Vector, len(v.GetSeqs()))
	for origin, seq := range v.GetSeqs() {
		out[origin] = seq
	}
	return out
}

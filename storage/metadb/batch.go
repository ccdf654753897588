package metadb

import (
	"context"

	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metalog"
)

// A ManifestPut is one manifest of a PutManifests batch: linked into
// Repo and tagged with each of Tags.
type ManifestPut struct {
	Repo     string
	Manifest *storage.Manifest
	Tags     []string
}

// PutManifests stores many manifests as one write (one transaction, one
// batch of the log), each as PutManifest would: for loading metadata in
// bulk (imports, benchmarks). The batch is replicated like any other, but
// node/metasync's Store does not override this method: through it, a
// PutManifests returns before another member holds the batch.
func (s *manifests) PutManifests(ctx context.Context, puts []ManifestPut) error {
	recs := make([][]byte, len(puts))
	for i, p := range puts {
		rec, err := encodeRecord(p.Manifest)
		if err != nil {
			return err
		}
		recs[i] = rec
	}
	return s.write(ctx, func(st *state) ([]metalog.Op, error) {
		// The ops of one batch share a stamp, so of two on one key the
		// first would win: a later put of a key replaces the earlier op.
		var ops []metalog.Op
		at := map[string]int{}
		set := func(key string, value []byte) {
			if i, ok := at[key]; ok {
				ops[i].Value = value
				return
			}
			at[key] = len(ops)
			ops = append(ops, metalog.Op{Key: key, Value: value})
		}
		for i, p := range puts {
			d := p.Manifest.Descriptor.Digest
			// A record found bad is written again, and so mended.
			if k, _ := keyOf(d); st.records[k].n == 0 || !st.records[k].stored || s.bad.has(k) {
				set(string(manifestKey(d)), recs[i])
			}
			set(string(manifestLinkKey(p.Repo, d)), nil)
			for _, tag := range p.Tags {
				set(string(tagKey(p.Repo, tag)), []byte(d))
			}
		}
		return ops, nil
	}, nil)
}

package placement

import "github.com/atollhq/atoll/storage"

// Optional capabilities through decorators. The registry discovers what a
// blob store can do beyond storage.BlobStore by type assertion
// (if p, ok := s.(storage.UploadPurger)), so a decorator that embedded
// storage.BlobStore would hide every capability of the store it wraps: the
// upload purge of a cluster member and of a bucket once went missing that
// way. Two rules keep the answers of a decorated store those of the store
// it wraps:
//
//   - LocalStore names every capability both backends have, and the
//     decorators embed LocalStore, so the compiler promotes each of them;
//   - a capability only some backends have (storage.URLSigner: S3 only) is
//     added back by withOptional when the wrapped store has it.
//
// TestDecoratorsKeepCapabilities finds every optional capability the
// storage package declares and checks, in every mode, that the store the
// registry serves from answers each like the member's own store.

// Served returns the blob store the registry serves from in this member's
// mode: the local store on its own; on local disks in a cluster, one whose
// commits place the blob on its owners; on a bucket, one whose reads go to
// the member that caches the blob.
func (p *Placer) Served() storage.BlobStore {
	switch {
	case p.deps.Cache != nil:
		return withOptional(sharedBlobs{LocalStore: p.deps.Local, p: p}, p.deps.Local)
	case p.clustered():
		return withOptional(clusterBlobs{LocalStore: p.deps.Local, p: p}, p.deps.Local)
	default:
		return p.deps.Local
	}
}

// withOptional returns decorator d of store base, with the optional
// capabilities that base has beyond LocalStore and d does not implement.
func withOptional(d, base LocalStore) storage.BlobStore {
	if u, ok := base.(storage.URLSigner); ok {
		if _, own := d.(storage.URLSigner); !own {
			return signingStore{d, u}
		}
	}
	return d
}

// signingStore is decorator LocalStore with the URLSigner of the store it
// wraps.
type signingStore struct {
	LocalStore
	storage.URLSigner
}

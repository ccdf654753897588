package placement

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/ring"
	"github.com/atollhq/atoll/storage"
)

// MemoryStore is a LocalStore in memory for tests: it verifies digests on
// commit like the real stores. Its methods may be called concurrently.
type MemoryStore struct {
	mu      sync.Mutex
	blobs   map[digest.Digest][]byte
	uploads map[string]*memUpload
}

type memUpload struct {
	data    []byte
	written time.Time
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{blobs: map[digest.Digest][]byte{}, uploads: map[string]*memUpload{}}
}

// Add stores data as a blob and returns its digest.
func (m *MemoryStore) Add(data []byte) digest.Digest {
	d := digest.FromBytes(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.blobs[d] = bytes.Clone(data)
	return d
}

// Holds reports whether the store holds blob d.
func (m *MemoryStore) Holds(d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[d]
	return ok
}

// Stat implements storage.BlobStore.
func (m *MemoryStore) Stat(_ context.Context, d digest.Digest) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return 0, fmt.Errorf("memory store: %s: %w", d, storage.ErrBlobUnknown)
	}
	return int64(len(b)), nil
}

// Open implements storage.BlobStore.
func (m *MemoryStore) Open(_ context.Context, d digest.Digest) (storage.Blob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, fmt.Errorf("memory store: %s: %w", d, storage.ErrBlobUnknown)
	}
	return memBlob{bytes.NewReader(b)}, nil
}

// Delete implements storage.BlobStore.
func (m *MemoryStore) Delete(_ context.Context, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[d]; !ok {
		return fmt.Errorf("memory store: %s: %w", d, storage.ErrBlobUnknown)
	}
	delete(m.blobs, d)
	return nil
}

// Writer implements storage.BlobStore.
func (m *MemoryStore) Writer(_ context.Context, id string, state []byte) (storage.BlobWriter, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if state == nil {
		m.uploads[id] = &memUpload{written: time.Now()}
	} else if _, ok := m.uploads[id]; !ok {
		return nil, fmt.Errorf("memory store: upload %s: %w", id, storage.ErrUploadUnknown)
	}
	return &memWriter{m: m, id: id}, nil
}

// Walk implements storage.BlobWalker, in digest order.
func (m *MemoryStore) Walk(ctx context.Context, fn func(d digest.Digest, size int64) error) error {
	m.mu.Lock()
	ds := make([]digest.Digest, 0, len(m.blobs))
	for d := range m.blobs {
		ds = append(ds, d)
	}
	m.mu.Unlock()
	slices.Sort(ds)
	for _, d := range ds {
		size, err := m.Stat(ctx, d)
		if err != nil {
			continue // deleted during the walk
		}
		if err := fn(d, size); err != nil {
			return err
		}
	}
	return nil
}

// Usage implements storage.UsageReporter.
func (m *MemoryStore) Usage() (blobs, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, b := range m.blobs {
		blobs, bytes = blobs+1, bytes+int64(len(b))
	}
	return blobs, bytes
}

// PurgeUploads implements storage.UploadPurger.
func (m *MemoryStore) PurgeUploads(_ context.Context, cutoff time.Time, keep func(id string) bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, u := range m.uploads {
		if u.written.Before(cutoff) && !keep(id) {
			delete(m.uploads, id)
		}
	}
	return nil
}

// Check reports that the store accepts writes.
func (m *MemoryStore) Check(context.Context) error { return nil }

// memBlob is a blob of a MemoryStore; bytes.Reader gives it Read, Seek
// and Size.
type memBlob struct{ *bytes.Reader }

func (memBlob) Close() error       { return nil }
func (memBlob) ModTime() time.Time { return time.Time{} }

// memWriter appends to an upload of a MemoryStore.
type memWriter struct {
	m  *MemoryStore
	id string
}

func (w *memWriter) upload() (*memUpload, error) {
	u, ok := w.m.uploads[w.id]
	if !ok {
		return nil, fmt.Errorf("memory store: upload %s: %w", w.id, storage.ErrUploadUnknown)
	}
	return u, nil
}

func (w *memWriter) Write(p []byte) (int, error) {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	u, err := w.upload()
	if err != nil {
		return 0, err
	}
	u.data, u.written = append(u.data, p...), time.Now()
	return len(p), nil
}

func (w *memWriter) Size() int64 {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	if u, err := w.upload(); err == nil {
		return int64(len(u.data))
	}
	return 0
}

func (w *memWriter) State() ([]byte, error) { return []byte(w.id), nil }

func (w *memWriter) Commit(_ context.Context, d digest.Digest) error {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	u, err := w.upload()
	if err != nil {
		return err
	}
	delete(w.m.uploads, w.id)
	if digest.FromBytes(u.data) != d {
		return fmt.Errorf("memory store: upload %s: %w", w.id, storage.ErrDigestMismatch)
	}
	w.m.blobs[d] = u.data
	return nil
}

func (w *memWriter) Cancel(context.Context) error {
	w.m.mu.Lock()
	defer w.m.mu.Unlock()
	delete(w.m.uploads, w.id)
	return nil
}

func (w *memWriter) Close() error { return nil }

// FakeMembers is a cluster membership for tests: a set of live members,
// the ring over them, and those that stay on a hand-off. Its methods may be
// called concurrently.
type FakeMembers struct {
	self string
	mu   sync.Mutex
	live []string
	ring *ring.Ring
	left map[string]bool // announced that they leave
}

// NewFakeMembers returns the membership seen by member self, with live
// members (self among them or not).
func NewFakeMembers(self string, live ...string) *FakeMembers {
	f := &FakeMembers{self: self, left: map[string]bool{}}
	f.SetLive(live...)
	return f
}

// SetLive replaces the live members and rebuilds the ring over them.
func (f *FakeMembers) SetLive(live ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.live = slices.Sorted(slices.Values(live))
	f.ring = ring.New(ring.Config{}, f.live)
}

// Leaving marks member name as announcing that it leaves.
func (f *FakeMembers) Leaving(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.left[name] = true
}

// Ring implements Members.
func (f *FakeMembers) Ring() Ring {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ring
}

// Live implements Members.
func (f *FakeMembers) Live(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.live, name)
}

// Staying implements Members.
func (f *FakeMembers) Staying() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, m := range f.live {
		if m != f.self && !f.left[m] {
			out = append(out, m)
		}
	}
	return out
}

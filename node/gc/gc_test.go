package gc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/atollhq/atoll/node/gc/fence"
	"github.com/atollhq/atoll/oci"
	"github.com/atollhq/atoll/storage"
	"github.com/atollhq/atoll/storage/metadb"
)

var ctx = context.Background()

// memBlobs is a blob store in memory, every blob written at one time.
type memBlobs struct {
	mu    sync.Mutex
	blobs map[digest.Digest][]byte
	at    time.Time
}

func (m *memBlobs) Walk(_ context.Context, fn func(d digest.Digest, size int64) error) error {
	m.mu.Lock()
	sizes := map[digest.Digest]int64{}
	for d, b := range m.blobs {
		sizes[d] = int64(len(b))
	}
	m.mu.Unlock()
	for d, size := range sizes {
		if err := fn(d, size); err != nil {
			return err
		}
	}
	return nil
}

func (m *memBlobs) Open(_ context.Context, d digest.Digest) (storage.Blob, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[d]
	if !ok {
		return nil, storage.ErrBlobUnknown
	}
	return memBlob{bytes.NewReader(b), m.at}, nil
}

func (m *memBlobs) Delete(_ context.Context, d digest.Digest) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.blobs[d]; !ok {
		return storage.ErrBlobUnknown
	}
	delete(m.blobs, d)
	return nil
}

type memBlob struct {
	*bytes.Reader
	at time.Time
}

func (b memBlob) Close() error       { return nil }
func (b memBlob) ModTime() time.Time { return b.at }
func (b memBlob) Size() int64        { return b.Reader.Size() }
func (m *memBlobs) has(d digest.Digest) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	_, ok := m.blobs[d]
	return ok
}

// members fakes the rest of a cluster: every other member answers with
// its own fence, or fails.
type members struct {
	self   string
	others map[string]*Collector
	down   string // a member that does not answer
}

func (m *members) Names() []string {
	names := []string{m.self}
	for n := range m.others {
		names = append(names, n)
	}
	if m.down != "" {
		names = append(names, m.down)
	}
	return names
}

func (m *members) Ask(_ context.Context, name string, r Round) (Reply, error) {
	if c := m.others[name]; c != nil {
		return c.Answer(r), nil
	}
	return Reply{}, errors.New("no answer")
}

func (m *members) CatchUp(context.Context) error { return nil }

// member is one collector over its own stores.
func member(t *testing.T, name string, blobs *memBlobs) (*Collector, *metadb.Store, *fence.Fence) {
	t.Helper()
	meta, err := metadb.Open(filepath.Join(t.TempDir(), "metadata.db"), metadb.Options{Origin: name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = meta.Close() })
	f := fence.New(fence.Config{}, nil)
	c, err := New(Config{}, Deps{Self: name, Blobs: blobs, Meta: meta, Fence: f})
	if err != nil {
		t.Fatal(err)
	}
	return c, meta, f
}

// image stores a manifest referencing blobs in repo and returns its digest.
func image(t *testing.T, meta *metadb.Store, repo, tag string, blobs ...digest.Digest) digest.Digest {
	t.Helper()
	var layers []string
	for _, d := range blobs {
		layers = append(layers, fmt.Sprintf(`{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":%q,"size":1}`, d))
	}
	body := []byte(`{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageManifest + `","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` +
		digest.FromString("config").String() + `","size":1},"layers":[` + join(layers) + `]}`)
	m, err := oci.Parse(v1.MediaTypeImageManifest, body)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(body)
	if err := meta.PutManifest(ctx, repo, &storage.Manifest{Descriptor: m.Descriptor(d, int64(len(body))), Content: body}, tag); err != nil {
		t.Fatal(err)
	}
	return d
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func TestCollectFreesOnlyTheUnreferenced(t *testing.T) {
	kept, dropped, told := digest.FromString("kept"), digest.FromString("dropped"), digest.FromString("told")
	blobs := &memBlobs{blobs: map[digest.Digest][]byte{kept: []byte("k"), dropped: []byte("d"), told: []byte("t")}, at: time.Now().Add(-time.Hour)}
	c, meta, f := member(t, "n1", blobs)
	image(t, meta, "app", "v1", kept)
	f.Told("app", told) // a push in progress checked it
	rep, err := c.Collect(ctx, Options{DryRun: true})
	if err != nil || rep.Freed != 1 || !blobs.has(dropped) {
		t.Fatalf("dry run: %+v, %v", rep, err)
	}
	rep, err = c.Collect(ctx, Options{Grace: 2 * time.Hour})
	if err != nil || rep.Freed != 0 || rep.Young != 2 {
		t.Fatalf("within the grace period: %+v, %v", rep, err)
	}
	rep, err = c.Collect(ctx, Options{})
	if err != nil || rep.Freed != 1 || rep.Spared != 1 || rep.Marked != 2 { // marked: the layer and the config
		t.Fatalf("collect: %+v, %v", rep, err)
	}
	if blobs.has(dropped) || !blobs.has(kept) || !blobs.has(told) {
		t.Fatal("freed the wrong blobs")
	}
}

// A blob another member's manifest references, or a member that does not
// answer, spares the blob.
func TestCollectAsksEveryMember(t *testing.T) {
	shared, alone := digest.FromString("shared"), digest.FromString("alone")
	old := time.Now().Add(-time.Hour)
	blobs1 := &memBlobs{blobs: map[digest.Digest][]byte{shared: []byte("s"), alone: []byte("a")}, at: old}
	c1, _, _ := member(t, "n1", blobs1)
	c2, meta2, _ := member(t, "n2", &memBlobs{blobs: map[digest.Digest][]byte{}, at: old})
	image(t, meta2, "app", "v1", shared) // not replicated to n1 yet
	ms := &members{self: "n1", others: map[string]*Collector{"n2": c2}, down: "n3"}
	c1.deps.Members = ms
	rep, err := c1.Collect(ctx, Options{})
	if err != nil || rep.Freed != 0 || rep.Spared != 2 {
		t.Fatalf("with a member down: %+v, %v", rep, err)
	}
	ms.down = ""
	rep, err = c1.Collect(ctx, Options{})
	if err != nil || rep.Freed != 1 || rep.Spared != 1 {
		t.Fatalf("all members up: %+v, %v", rep, err)
	}
	if !blobs1.has(shared) || blobs1.has(alone) {
		t.Fatal("freed a blob another member's manifest references, or kept the garbage")
	}
}

// Retention prunes old tags but never an immutable one.
func TestRetentionKeepsImmutable(t *testing.T) {
	blobs := &memBlobs{blobs: map[digest.Digest][]byte{}, at: time.Now()}
	meta, err := metadb.Open(filepath.Join(t.TempDir(), "metadata.db"), metadb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer meta.Close()
	c, err := New(Config{Retention: []RetentionPolicy{{Repositories: []string{"**"}, KeepLast: 1}}},
		Deps{Self: "n1", Blobs: blobs, Meta: meta, Fence: fence.New(fence.Config{}, nil),
			Immutable: func(_, tag string) bool { return tag == "v1.0.0" }})
	if err != nil {
		t.Fatal(err)
	}
	for i, tag := range []string{"v1.0.0", "old", "new"} {
		image(t, meta, "app", tag, digest.FromString(tag))
		_ = i
	}
	rep, err := c.Collect(ctx, Options{})
	if err != nil || rep.Tags != 1 {
		t.Fatalf("retention: %+v, %v", rep, err)
	}
	tags, _ := meta.Tags("app", "", 0)
	if fmt.Sprint(tags) != "[new v1.0.0]" {
		t.Fatalf("tags left %v, want the newest and the immutable one", tags)
	}
}

package fence

import (
	"context"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

var (
	layer  = digest.FromString("layer")
	config = digest.FromString("config")
	ctx    = context.Background()
)

// clock is a settable time for a Fence.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newFence(t *testing.T, exists Exists) (*Fence, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	f := New(Config{Window: time.Hour, Expiry: time.Minute, GoneTTL: 10 * time.Minute}, exists)
	f.now = c.now
	return f, c
}

// nothing is the mark of a member whose manifests reference nothing.
func nothing() map[digest.Digest]bool { return nil }

// collect runs both rounds for ds as a collector would and returns what
// it may delete, releasing the rest.
func collect(f *Fence, epoch string, ds ...digest.Digest) []digest.Digest {
	rest := without(ds, f.Condemn(epoch, ds, false, nothing))
	return without(rest, f.Commit(epoch, rest))
}

func without(ds, drop []digest.Digest) []digest.Digest {
	var out []digest.Digest
	for _, d := range ds {
		if !slices.Contains(drop, d) {
			out = append(out, d)
		}
	}
	return out
}

// A blob a client was told about is spared until a manifest in that
// repository uses it, or the window passes.
func TestToldIsSparedUntilUsedOrWindow(t *testing.T) {
	f, c := newFence(t, nil)
	if !f.Told("app", layer) {
		t.Fatal("Told refused a blob no collection holds")
	}
	if got := f.Condemn("e1", []digest.Digest{layer}, false, nothing); !slices.Equal(got, []digest.Digest{layer}) {
		t.Fatalf("condemn of a blob just told about: refused %v", got)
	}
	// A manifest in another repository does not end the wait.
	_, done, err := f.Reference(ctx, "other", []digest.Digest{layer})
	if err != nil {
		t.Fatal(err)
	}
	done(true)
	if got := collect(f, "e2", layer); len(got) != 0 {
		t.Fatalf("a manifest elsewhere ended the wait: deletable %v", got)
	}
	f.Release("e2", []digest.Digest{layer}, nil)
	// A failed manifest PUT does not either.
	_, done, _ = f.Reference(ctx, "app", []digest.Digest{layer})
	done(false)
	if got := collect(f, "e3", layer); len(got) != 0 {
		t.Fatalf("a failed manifest ended the wait: deletable %v", got)
	}
	f.Release("e3", []digest.Digest{layer}, nil)
	_, done, _ = f.Reference(ctx, "app", []digest.Digest{layer})
	done(true)
	c.add(time.Millisecond) // a later collection, started after the manifest
	if got := collect(f, "e4", layer); !slices.Equal(got, []digest.Digest{layer}) {
		t.Fatalf("after the manifest used it: deletable %v", got)
	}
	f.Release("e4", []digest.Digest{layer}, nil)

	// Told and never used: spared for the window only.
	f.Told("app", config)
	c.add(59 * time.Minute)
	if got := collect(f, "e5", config); len(got) != 0 {
		t.Fatalf("within the window: deletable %v", got)
	}
	f.Release("e5", []digest.Digest{config}, nil)
	c.add(2 * time.Minute)
	if got := collect(f, "e6", config); !slices.Equal(got, []digest.Digest{config}) {
		t.Fatalf("after the window: deletable %v", got)
	}
}

// A condemned blob is reported absent, and a write that uses it revives
// it: the commit round refuses it.
func TestCondemnedIsAbsentAndRevivedByUse(t *testing.T) {
	for _, use := range []string{"manifest", "upload"} {
		t.Run(use, func(t *testing.T) {
			f, _ := newFence(t, nil)
			if got := f.Condemn("e", []digest.Digest{layer, config}, false, nothing); len(got) != 0 {
				t.Fatalf("refused %v", got)
			}
			if f.Told("app", layer) {
				t.Fatal("a condemned blob was reported present")
			}
			var done func(bool)
			var err error
			if use == "manifest" {
				_, done, err = f.Reference(ctx, "app", []digest.Digest{layer})
			} else {
				_, done, err = f.Store(ctx, "app", layer)
			}
			if err != nil {
				t.Fatal(err)
			}
			done(true)
			if got := f.Commit("e", []digest.Digest{layer, config}); !slices.Equal(got, []digest.Digest{layer}) {
				t.Fatalf("commit refused %v, want the revived blob", got)
			}
			if !f.Told("app", layer) {
				t.Fatal("a revived blob is reported absent")
			}
		})
	}
}

// A write in progress refuses both rounds.
func TestWriteInProgressRefuses(t *testing.T) {
	f, _ := newFence(t, nil)
	_, done, err := f.Reference(ctx, "app", []digest.Digest{layer})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.Condemn("e", []digest.Digest{layer}, false, nothing); len(got) != 1 {
		t.Fatalf("condemn during a write: refused %v", got)
	}
	done(false)
	if got := f.Condemn("e2", []digest.Digest{layer}, false, nothing); len(got) != 0 {
		t.Fatalf("condemn after the write: refused %v", got)
	}
	_, done, _ = f.Store(ctx, "app", config) // another blob: no effect
	defer done(false)
	if got := f.Commit("e2", []digest.Digest{layer}); len(got) != 0 {
		t.Fatalf("commit: refused %v", got)
	}
}

// A write that uses a deleting blob waits for the release, and then
// learns whether the blob is gone.
func TestWriteWaitsForDeletion(t *testing.T) {
	var mu sync.Mutex
	held := false
	exists := func(context.Context, digest.Digest) bool { mu.Lock(); defer mu.Unlock(); return held }
	f, _ := newFence(t, exists)
	if got := collect(f, "e", layer, config); len(got) != 2 {
		t.Fatalf("deletable %v", got)
	}
	type result struct {
		missing []digest.Digest
		err     error
	}
	results := make(chan result)
	go func() {
		missing, done, err := f.Reference(ctx, "app", []digest.Digest{layer})
		if err == nil {
			done(false)
		}
		results <- result{missing, err}
	}()
	select {
	case r := <-results:
		t.Fatalf("a manifest PUT went on during the deletion: %+v", r)
	case <-time.After(100 * time.Millisecond):
	}
	f.Release("e", []digest.Digest{layer, config}, []digest.Digest{layer})
	if r := <-results; r.err != nil || !slices.Equal(r.missing, []digest.Digest{layer}) {
		t.Fatalf("after the release: missing %v, err %v; want the deleted blob", r.missing, r.err)
	}
	// Uploaded again meanwhile (held anywhere): not missing.
	mu.Lock()
	held = true
	mu.Unlock()
	missing, done, err := f.Reference(ctx, "app", []digest.Digest{layer})
	if err != nil || len(missing) != 0 {
		t.Fatalf("re-uploaded blob: missing %v, err %v", missing, err)
	}
	done(true)
	// A waiting write gives up with its context.
	collect(f, "e2", config)
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, _, err := f.Store(cctx, "app", config); err == nil {
		t.Fatal("Store returned while the blob was being deleted")
	}
}

// Holds of a collector that went silent expire; a blob it was deleting
// counts as gone.
func TestSilentCollectorExpires(t *testing.T) {
	f, c := newFence(t, func(context.Context, digest.Digest) bool { return false })
	collect(f, "e", layer)
	f.Condemn("e2", []digest.Digest{config}, false, nothing)
	c.add(2 * time.Minute)
	if !f.Told("app", config) {
		t.Fatal("an expired condemnation still hides the blob")
	}
	missing, done, err := f.Reference(ctx, "app", []digest.Digest{layer})
	if err != nil || !slices.Equal(missing, []digest.Digest{layer}) {
		t.Fatalf("after expiry: missing %v, err %v", missing, err)
	}
	done(false)
}

// A dry run condemns nothing.
func TestDryRun(t *testing.T) {
	f, _ := newFence(t, nil)
	f.Told("app", config)
	if got := f.Condemn("e", []digest.Digest{layer, config}, true, nothing); !slices.Equal(got, []digest.Digest{config}) {
		t.Fatalf("dry run refused %v, want the told blob", got)
	}
	if !f.Told("app", layer) {
		t.Fatal("a dry run hid a blob")
	}
	if got := f.Commit("e", []digest.Digest{layer}); len(got) != 1 {
		t.Fatalf("commit after a dry run: refused %v", got)
	}
}

// Many writers and collectors at once: a blob a writer holds is never
// confirmed for deletion while held.
func TestConcurrentWritersAndCollectors(t *testing.T) {
	f, _ := newFence(t, func(context.Context, digest.Digest) bool { return true })
	blobs := make([]digest.Digest, 8)
	for i := range blobs {
		blobs[i] = digest.FromString(string(rune('a' + i)))
	}
	var mu sync.Mutex
	holding := map[digest.Digest]int{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				d := blobs[(w+i)%len(blobs)]
				_, done, err := f.Store(ctx, "app", d)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				holding[d]++
				mu.Unlock()
				runtime.Gosched() // the write's work, while collectors run
				mu.Lock()
				holding[d]--
				mu.Unlock()
				done(false) // not acknowledged: no tell spares the blob
			}
		}()
	}
	for e := range 200 {
		epoch := "e" + string(rune('A'+e%26)) + time.Duration(e).String()
		deletable := collect(f, epoch, blobs...)
		mu.Lock()
		for _, d := range deletable {
			if holding[d] > 0 {
				t.Errorf("blob %s confirmed for deletion while a write held it", d)
			}
		}
		mu.Unlock()
		f.Release(epoch, blobs, deletable)
	}
	close(stop)
	wg.Wait()
}

// What clients were told survives a restart.
func TestSaveLoad(t *testing.T) {
	path := t.TempDir() + "/fence.json"
	f, c := newFence(t, nil)
	f.Told("app", layer)
	f.Told("app", config)
	_, done, _ := f.Reference(ctx, "app", []digest.Digest{config})
	done(true)
	if err := f.Save(path); err != nil {
		t.Fatal(err)
	}
	g, gc := newFence(t, nil)
	gc.add(c.now().Sub(gc.now()) + time.Minute)
	if err := g.Load(path); err != nil {
		t.Fatal(err)
	}
	if got := collect(g, "e", layer, config); !slices.Equal(got, []digest.Digest{config}) {
		t.Fatalf("after a restart: deletable %v, want only the blob a manifest used", got)
	}
	if err := New(Config{}, nil).Load(t.TempDir() + "/none.json"); err != nil {
		t.Fatalf("no file: %v", err)
	}
}

// The member's own manifests: those stored before the collection reached
// it are in its mark; those stored after are recorded by the barrier;
// both are refused in every round of that collection, and the barrier
// goes when the collection ends.
func TestMarkAndBarrier(t *testing.T) {
	f, c := newFence(t, nil)
	marks := 0
	mark := func() map[digest.Digest]bool { marks++; return map[digest.Digest]bool{layer: true} }
	if got := f.Condemn("e", []digest.Digest{layer}, false, mark); !slices.Equal(got, []digest.Digest{layer}) {
		t.Fatalf("a marked blob: refused %v", got)
	}
	c.add(time.Second)
	_, done, _ := f.Reference(ctx, "app", []digest.Digest{config})
	done(true) // a manifest stored after the mark: the barrier records it
	if got := f.Condemn("e", []digest.Digest{config}, false, mark); !slices.Equal(got, []digest.Digest{config}) {
		t.Fatalf("a blob used after the mark: refused %v", got)
	}
	if marks != 1 {
		t.Errorf("marked %d times in one collection, want once", marks)
	}
	f.End("e")
	if got := f.Condemn("e2", []digest.Digest{config}, false, nothing); len(got) != 0 {
		t.Fatalf("a later collection, whose mark does not hold it: refused %v", got)
	}
	if len(f.collections.used) != 0 {
		t.Errorf("the barrier kept %d blobs with a collection running", len(f.collections.used))
	}
	f.End("e2")
	_, done, _ = f.Reference(ctx, "app", []digest.Digest{layer})
	done(true)
	if len(f.collections.used) != 0 {
		t.Errorf("the barrier recorded a use with no collection running")
	}
}

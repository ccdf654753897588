package queue

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestDrainInOrderAtLeastOnce appends items, fails part of a batch, and
// checks that every item is delivered, in order, none skipped, and that
// items survive a reopen of the file.
func TestDrainInOrderAtLeastOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "q.db")
	q, err := Open(path, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"1", "2", "3"} {
		if err := q.Append([]string{"a"}, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if q, err = Open(path, []string{"a"}); err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if n, err := q.Len("a"); err != nil || n != 3 {
		t.Fatalf("after reopen: %d items, %v; want 3", n, err)
	}
	for _, s := range []string{"4", "5"} {
		if err := q.Append([]string{"a"}, []byte(s)); err != nil {
			t.Fatal(err)
		}
	}

	var mu sync.Mutex
	var got []string
	calls := 0
	all := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := &Drainer{Queue: q, Stream: "a", Batch: 2, Backoff: time.Millisecond, Wake: make(chan struct{}),
		Deliver: func(_ context.Context, items []Item) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			calls++
			if calls == 2 { // the second batch: only its first item goes through
				got = append(got, string(items[0].Value))
				return 1, errors.New("endpoint down")
			}
			for _, it := range items {
				got = append(got, string(it.Value))
			}
			if len(got) == 5 {
				close(all)
			}
			return len(items), nil
		}}
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	select {
	case <-all:
	case <-time.After(10 * time.Second):
		t.Fatal("not drained within 10s")
	}
	cancel()
	<-done
	want := []string{"1", "2", "3", "4", "5"}
	if len(got) != len(want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delivered %v, want %v", got, want)
		}
	}
	if n, _ := q.Len("a"); n != 0 {
		t.Fatalf("%d items left after delivery", n)
	}
}

package metadb

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTagSetMatchesMap runs random sets and removes against a map and
// checks every read after each step: get, the sorted names, pages, and
// that packing leaves at most as much garbage as names.
func TestTagSetMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var ts tagSet
	want := map[string]dkey{}
	for step := range 20000 {
		tag := fmt.Sprintf("v%d", rng.IntN(300))
		if rng.IntN(3) == 0 {
			ts.remove(tag)
			delete(want, tag)
		} else {
			k := dkey{byte(step), byte(step >> 8), 1}
			ts.set(tag, k)
			want[tag] = k
		}
		_, present := want[tag]
		if got, ok := ts.get(tag); ok != present || got != want[tag] {
			t.Fatalf("step %d: get(%q) = %v, %v; want %v", step, tag, got, ok, want[tag])
		}
		if ts.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, ts.len(), len(want))
		}
		if ts.garbage > len(ts.text)/2 {
			t.Fatalf("step %d: %d bytes of garbage in %d", step, ts.garbage, len(ts.text))
		}
	}
	sorted := slices.Sorted(maps.Keys(want))
	if got := ts.names("", 0); !slices.Equal(got, sorted) {
		t.Fatalf("names = %v, want %v", got, sorted)
	}
	for _, c := range []struct {
		last string
		n    int
		want []string
	}{
		{"", 3, sorted[:3]},
		{sorted[2], 2, sorted[3:5]},
		{sorted[2] + "\x00", 0, sorted[3:]}, // last need not be a tag
		{sorted[len(sorted)-1], 5, []string{}},
	} {
		if got := ts.names(c.last, c.n); !slices.Equal(got, c.want) {
			t.Errorf("names(%q, %d) = %v, want %v", c.last, c.n, got, c.want)
		}
	}
	var each []string
	ts.each(func(tag []byte, k dkey) bool {
		if want[string(tag)] != k {
			t.Errorf("each: %s -> %v, want %v", tag, k, want[string(tag)])
		}
		each = append(each, string(tag))
		return true
	})
	if !slices.Equal(each, sorted) {
		t.Errorf("each visited %v, want %v", each, sorted)
	}
	for tag := range want {
		ts.remove(tag)
	}
	if ts.len() != 0 || ts.text != nil {
		t.Errorf("emptied set holds %d tags, %d bytes of text", ts.len(), len(ts.text))
	}
}

// TestTagSetGetAllocatesNothing: a tag lookup is on the path of every pull
// by tag.
func TestTagSetGetAllocatesNothing(t *testing.T) {
	var ts tagSet
	for i := range 100 {
		ts.set(fmt.Sprintf("tag-%03d", i), dkey{byte(i)})
	}
	tag := "tag-042"
	if n := testing.AllocsPerRun(100, func() { ts.get(tag) }); n != 0 {
		t.Errorf("get allocates %v times", n)
	}
}

package policy

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"gopkg.in/yaml.v3"

	"github.com/atollhq/atoll/api"
	"github.com/atollhq/atoll/storage/metadb"
)

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		patterns []string
		repo     string
		want     bool
	}{
		{[]string{"**"}, "a/b/c", true},
		{[]string{"team/**"}, "team/a/b", true},
		{[]string{"team/**"}, "team", false},
		{[]string{"team/**"}, "teamx/a", false},
		{[]string{"team/*"}, "team/a", true},
		{[]string{"team/*"}, "team/a/b", false},
		{[]string{"app", "x/**"}, "app", true},
		{nil, "app", false},
	} {
		if got := Match(tc.patterns, tc.repo); got != tc.want {
			t.Errorf("Match(%v, %q) = %v, want %v", tc.patterns, tc.repo, got, tc.want)
		}
	}
}

func TestQuotaYAML(t *testing.T) {
	var qs []Quota
	err := yaml.Unmarshal([]byte("- repositories: [\"team/**\"]\n  limit: 10GiB\n- repositories: [x]\n  limit: 1500\n"), &qs)
	if err != nil {
		t.Fatal(err)
	}
	if qs[0].Limit != 10<<30 || qs[1].Limit != 1500 {
		t.Errorf("limits %d and %d, want 10 GiB and 1500", qs[0].Limit, qs[1].Limit)
	}
	if err := yaml.Unmarshal([]byte("- limit: ten\n"), &qs); err == nil {
		t.Error("limit ten accepted")
	}
}

// fakeUsage holds a fixed set of blobs per repository.
type fakeUsage map[string]map[digest.Digest]int64

func (f fakeUsage) Usage(match func(string) bool) (metadb.Usage, map[string]metadb.Usage) {
	var u metadb.Usage
	seen := map[digest.Digest]bool{}
	for repo, blobs := range f {
		for d, size := range blobs {
			if match(repo) && !seen[d] {
				seen[d] = true
				u.Bytes += size
				u.Blobs++
			}
		}
	}
	return u, nil
}

func (f fakeUsage) Holds(match func(string) bool, d digest.Digest) bool {
	for repo, blobs := range f {
		if _, ok := blobs[d]; ok && match(repo) {
			return true
		}
	}
	return false
}

func TestQuotaAdmit(t *testing.T) {
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	usage := fakeUsage{"team/a": {d1: 800}, "other": {d2: 5000}}
	q, err := NewQuotas([]Quota{{Name: "team", Repositories: []string{"team/**"}, Limit: 1000}}, usage)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo string
		d    digest.Digest
		size int64
		ok   bool
	}{
		{"team/b", d1, 800, true},                       // counted once
		{"team/b", digest.FromString("new"), 200, true}, // exactly the limit
		{"team/b", digest.FromString("new"), 201, false},
		{"team/b", d2, 5000, false}, // linked elsewhere, outside the quota
		{"other", digest.FromString("big"), 1 << 40, true},
	} {
		names := q.Names(tc.repo)
		var err error
		for _, name := range names {
			var id uint64
			if id, err = q.Reserve(name, tc.repo, tc.d, tc.size); err == nil {
				q.Settle(name, id, false)
			}
		}
		if (err == nil) != tc.ok {
			t.Errorf("Reserve(%s, %d bytes) = %v, want ok=%v", tc.repo, tc.size, err, tc.ok)
		}
		if err != nil {
			if !errors.Is(err, api.ErrQuotaExceeded) || !strings.Contains(err.Error(), `"team"`) || !strings.Contains(err.Error(), "800 B used of 1000 B") {
				t.Errorf("refusal %q", err)
			}
		}
	}
	if _, err := NewQuotas([]Quota{{Repositories: []string{"x"}}}, usage); err == nil {
		t.Error("a quota without a limit accepted")
	}
}

func TestImmutableCovers(t *testing.T) {
	im, err := CompileImmutable([]ImmutableRule{{Repositories: []string{"prod/**"}, Tags: []string{`^v\d+\.\d+\.\d+$`}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		repo, tag string
		want      bool
	}{
		{"prod/app", "v1.2.3", true},
		{"prod/app", "v1.2", false},
		{"prod/app", "latest", false},
		{"dev/app", "v1.2.3", false},
	} {
		if got := im.Covers(tc.repo, tc.tag); got != tc.want {
			t.Errorf("Covers(%s, %s) = %v, want %v", tc.repo, tc.tag, got, tc.want)
		}
	}
	if _, err := CompileImmutable([]ImmutableRule{{Repositories: []string{"**"}, Tags: []string{"("}}}); err == nil {
		t.Error("a bad expression accepted")
	}
}

// TestQuotaReservations: writes admitted and not yet in the metadata are
// counted until the metadata shows them, their writer reports that they
// stored nothing, or the hold ends.
func TestQuotaReservations(t *testing.T) {
	usage := fakeUsage{"team/a": {digest.FromString("old"): 400}}
	q, err := NewQuotas([]Quota{{Name: "team", Repositories: []string{"team/**"}, Limit: 1000}}, usage)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1000, 0)
	q.now = func() time.Time { return now }
	a, b, c := digest.FromString("a"), digest.FromString("b"), digest.FromString("c")
	reserve := func(d digest.Digest, size int64) (uint64, error) { return q.Reserve("team", "team/b", d, size) }

	idA, err := reserve(a, 300)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(a, 300); err != nil { // the same blob counts once
		t.Fatalf("the same blob again: %v", err)
	}
	if _, err := reserve(b, 301); !errors.Is(err, api.ErrQuotaExceeded) || !strings.Contains(err.Error(), "pushes in progress") {
		t.Fatalf("400 used + 300 reserved + 301: %v, want a refusal counting the push in progress", err)
	}
	idB, err := reserve(b, 300)
	if err != nil {
		t.Fatalf("exactly the limit: %v", err)
	}
	if got := q.Reserved("team"); got != 600 {
		t.Errorf("reserved %d, want 600", got)
	}

	// b stored nothing: its room is free at once. a was stored: counted
	// until the metadata shows it, then as used.
	q.Settle("team", idB, false)
	q.Settle("team", idA, true)
	if got := q.Reserved("team"); got != 300 {
		t.Errorf("reserved %d after the settles, want 300 (a)", got)
	}
	usage["team/b"] = map[digest.Digest]int64{a: 300}
	if got := q.Reserved("team"); got != 0 {
		t.Errorf("reserved %d once the metadata shows a, want 0", got)
	}

	// A writer that never reports holds its room for DefaultHold.
	if _, err := reserve(c, 300); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(b, 1); err == nil {
		t.Fatal("past the limit while c is held")
	}
	now = now.Add(DefaultHold + time.Second)
	if _, err := reserve(b, 300); err != nil {
		t.Fatalf("c's hold ended: %v", err)
	}
	q.Settle("team", 12345, true) // unknown: ignored
	if _, err := q.Reserve("nope", "team/b", a, 1); err == nil || errors.Is(err, api.ErrQuotaExceeded) {
		t.Errorf("an unknown quota: %v", err)
	}
}

func TestHuman(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 800: "800 B", 5017: "4.9 KiB", 3 << 30: "3.0 GiB"} {
		if got := human(n); got != want {
			t.Errorf("human(%d) = %q, want %q", n, got, want)
		}
	}
}

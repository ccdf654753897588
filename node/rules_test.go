package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/atollhq/atoll/node/gc"
	"github.com/atollhq/atoll/node/policy"
)

// TestRetentionKeepsImmutableTags: retention that would keep only the
// newest tag never deletes an immutable one, nor its manifest.
func TestRetentionKeepsImmutableTags(t *testing.T) {
	n, srv := standalone(t, Config{
		GC:        gc.Config{Retention: []gc.RetentionPolicy{{Repositories: []string{"**"}, KeepLast: 1, UntaggedAfter: time.Nanosecond}}},
		Immutable: []policy.ImmutableRule{{Repositories: []string{"**"}, Tags: []string{`^v\d+$`}}},
	})
	for _, tag := range []string{"v1", "a", "v2", "b", "c"} {
		push(t, srv.URL, "app", tag, []byte("layer "+tag))
	}
	rep, err := n.CollectGarbage(context.Background(), gc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	tags, _ := n.meta.Tags("app", "", 0)
	if strings.Join(tags, ",") != "c,v1,v2" {
		t.Errorf("kept tags %v, want c, v1, v2", tags)
	}
	if rep.Tags != 2 {
		t.Errorf("pruned %d tags, want 2 (a and b)", rep.Tags)
	}
	for _, tag := range []string{"v1", "v2"} {
		d, err := n.meta.Tag("app", tag)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := n.meta.Manifest("app", d); err != nil {
			t.Errorf("manifest of immutable tag %s: %v", tag, err)
		}
	}
}

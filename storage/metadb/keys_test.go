package metadb

import (
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestKeys(t *testing.T) {
	d := digest.FromString("x")
	for _, tc := range []struct {
		name string
		key  []byte
		want key
	}{
		{"manifest", manifestKey(d), key{manifest: d}},
		{"tag", tagKey("a/b", "v1.0"), key{repo: "a/b", kind: kindTag, name: "v1.0"}},
		{"manifest link", manifestLinkKey("a", d), key{repo: "a", kind: kindManifest, name: d.String()}},
		{"blob link", blobLinkKey("x/y/z", d), key{repo: "x/y/z", kind: kindBlob, name: d.String()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseKey(tc.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("parseKey(%q) = %+v, want %+v", tc.key, got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "m", "r\x00a\x00x\x00n", "r\x00a\x00t", "q\x00z"} {
		if _, err := parseKey([]byte(bad)); err == nil {
			t.Errorf("parseKey(%q) succeeded, want error", bad)
		}
	}
}

package metadb

import (
	"encoding/json"
	"testing"

	"github.com/opencontainers/go-digest"
)

// decodeHead reads a record's head without its content, and a record of
// another shape whole.
func TestDecodeHead(t *testing.T) {
	m := manifest(`{"a":"\",\"content\":\"x"}`, digest.FromString("s"))
	m.Descriptor.Annotations = map[string]string{"k": `,"content":"`}
	rec, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{rec, []byte(`{"content":null,"subject":"` + string(m.Subject) + `","descriptor":{"size":4}}`)} {
		h, err := decodeHead(v)
		if err != nil || h.Subject != m.Subject || h.Descriptor.Size == 0 {
			t.Errorf("decodeHead(%s) = %+v, %v", v, h, err)
		}
	}
	got, err := decodeRecord(rec)
	if err != nil || string(got.Content) != string(m.Content) || got.Subject != m.Subject || got.Descriptor.Annotations["k"] != m.Descriptor.Annotations["k"] {
		t.Errorf("decodeRecord = %+v, %v", got, err)
	}
	for _, content := range []string{"", "a", "ab", "abc"} {
		rec, _ := json.Marshal(manifest(content, ""))
		if got, err := decodeRecord(rec); err != nil || string(got.Content) != content {
			t.Errorf("decodeRecord(%s) = %q, %v", rec, got.Content, err)
		}
	}
}

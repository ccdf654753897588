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
}

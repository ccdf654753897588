package api

import (
	"fmt"
	"testing"
)

// FuzzContentRange: an accepted Content-Range is 0 <= start <= end, and
// its canonical form parses back to the same range.
func FuzzContentRange(f *testing.F) {
	f.Add("0-1023")
	f.Fuzz(func(t *testing.T, s string) {
		start, end, err := contentRange(s)
		if err != nil {
			if start != 0 || end != 0 {
				t.Fatalf("contentRange(%q) = %d, %d with %v", s, start, end, err)
			}
			return
		}
		if start < 0 || end < start {
			t.Fatalf("contentRange(%q) = %d, %d", s, start, end)
		}
		canon := fmt.Sprintf("%d-%d", start, end)
		s2, e2, err := contentRange(canon)
		if err != nil || s2 != start || e2 != end {
			t.Fatalf("contentRange(%q) = %d, %d; reparse of %q = %d, %d, %v", s, start, end, canon, s2, e2, err)
		}
	})
}

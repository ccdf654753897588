package diskspace

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/atollhq/atoll/storage"
)

func TestFloor(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		in    string
		total uint64
		want  uint64
	}{
		{"", 100 * gib, gib},    // default: 1 GiB on a big disk
		{"", 10 * gib, gib / 2}, // default: 5 % on a small one
		{"500MiB", 100 * gib, 500 << 20},
		{"1GiB", 10 * gib, gib},
		{"1073741824", 10 * gib, gib},
		{"2GB", 10 * gib, 2e9},
		{"5%", 10 * gib, gib / 2},
		{"0.5%", 200 * gib, gib},
		{"0", 10 * gib, 0},
		{"0%", 10 * gib, 0},
	} {
		var f Floor
		if tc.in != "" {
			var err error
			if f, err = ParseFloor(tc.in); err != nil {
				t.Errorf("ParseFloor(%q): %v", tc.in, err)
				continue
			}
		}
		if got := f.Of(tc.total); got != tc.want {
			t.Errorf("floor %q of %d = %d, want %d", tc.in, tc.total, got, tc.want)
		}
	}
	for _, bad := range []string{"", "lots", "-1", "-5%", "101%", "NaN%", "1PiB", "1e30GiB"} {
		if f, err := ParseFloor(bad); err == nil {
			t.Errorf("ParseFloor(%q) = %v, want an error", bad, f)
		}
	}
	if reason, low := (Floor{}).Below(Space{Free: 10 << 20, Total: 100 << 20}); low {
		t.Errorf("10 MiB free of 100 MiB is below the default floor of 5 MiB: %s", reason)
	}
	reason, low := Floor{}.Below(Space{Free: 4 << 20, Total: 100 << 20})
	if !low {
		t.Error("4 MiB free of 100 MiB is not below the default floor of 5 MiB")
	}
	if want := "4.0MiB free of 100.0MiB, below the floor of 5.0MiB (storage.filesystem.minfree)"; reason != want {
		t.Errorf("reason %q, want %q", reason, want)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		err  error
		full bool
	}{
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}, true},
		{fmt.Errorf("sync: %w", &os.PathError{Op: "sync", Path: "/x", Err: syscall.EDQUOT}), true},
		{&os.PathError{Op: "write", Path: "/x", Err: syscall.EIO}, false},
		{errors.New("no space left on device"), false}, // only the errno counts
	} {
		err := Classify(tc.err)
		if got := errors.Is(err, storage.ErrNoSpace); got != tc.full {
			t.Errorf("Classify(%v) is ErrNoSpace: %v, want %v", tc.err, got, tc.full)
		}
		if !errors.Is(err, tc.err) {
			t.Errorf("Classify(%v) lost the cause: %v", tc.err, err)
		}
	}
	if Classify(nil) != nil {
		t.Error("Classify(nil) != nil")
	}
}

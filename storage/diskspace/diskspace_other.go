//go:build !unix

package diskspace

import (
	"errors"
	"fmt"
	"os"
)

// Stat is unsupported here.
func Stat(path string) (Space, error) {
	return Space{}, fmt.Errorf("statfs %s: %w", path, errors.ErrUnsupported)
}

func isQuota(error) bool { return false }

// Allocated is unsupported here.
func Allocated(f *os.File) (int64, error) {
	return 0, fmt.Errorf("stat %s: %w", f.Name(), errors.ErrUnsupported)
}

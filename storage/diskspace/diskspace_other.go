//go:build !unix

package diskspace

import (
	"errors"
	"fmt"
)

// Stat is unsupported here.
func Stat(path string) (Space, error) {
	return Space{}, fmt.Errorf("statfs %s: %w", path, errors.ErrUnsupported)
}

func isQuota(error) bool { return false }

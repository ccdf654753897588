//go:build !linux

package diskspace

import (
	"errors"
	"fmt"
	"os"
)

// Preallocate is unsupported here: writing zeros would race with the
// writer that owns the file.
func Preallocate(f *os.File, _, _ int64) error {
	return fmt.Errorf("preallocate %s: %w", f.Name(), errors.ErrUnsupported)
}

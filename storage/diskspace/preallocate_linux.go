package diskspace

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Preallocate gives f the disk blocks of [off, off+n) without changing its
// size or its content, so later writes there cannot fail for lack of space,
// even past the end of the file (a truncate that extends the file keeps
// them). It fails with storage.ErrNoSpace when the disk is full, and with
// an error wrapping errors.ErrUnsupported where the filesystem cannot.
func Preallocate(f *os.File, off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
		return fmt.Errorf("preallocate %s: %w (%w)", f.Name(), errors.ErrUnsupported, err)
	}
	if err != nil {
		return Classify(fmt.Errorf("preallocate %s: %w", f.Name(), err))
	}
	return nil
}

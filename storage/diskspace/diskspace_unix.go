//go:build unix

package diskspace

import (
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Stat returns the space of the filesystem holding path.
func Stat(path string) (Space, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Space{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	bs := uint64(st.Bsize)
	return Space{Free: uint64(st.Bavail) * bs, Total: uint64(st.Blocks) * bs}, nil
}

func isQuota(err error) bool { return errors.Is(err, syscall.EDQUOT) }

package filesystem

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// openUpload opens an upload file for direct I/O (O_DIRECT), or for
// buffered I/O where the filesystem refuses direct I/O.
func openUpload(path string, flags int) (*uploadFile, error) {
	f, err := os.OpenFile(path, flags|syscall.O_DIRECT, 0o600)
	if errors.Is(err, syscall.EINVAL) {
		f, err = os.OpenFile(path, flags, 0o600)
		if err != nil {
			return nil, err
		}
		return &uploadFile{File: f}, nil
	}
	if err != nil {
		return nil, err
	}
	return &uploadFile{File: f, direct: true}, nil
}

// buffered turns direct I/O off, for a filesystem that accepted O_DIRECT
// at open but refuses a direct write.
func (f *uploadFile) buffered() error {
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(f.Fd(), unix.F_SETFL, flags&^syscall.O_DIRECT)
	}
	if err != nil {
		return err
	}
	f.direct = false
	return nil
}

// startWriteback asks the kernel to begin writing [off, off+n) of f to disk
// without waiting, so the fsync that makes an upload durable finds little
// left to do. Failure only loses the head start.
func startWriteback(f *os.File, off, n int64) {
	_ = unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// adviseSequential tells the kernel that blob f is read from start to
// end, which doubles its readahead window: a blob that is not in the page
// cache (uploads bypass it, see pipeline.go; or evicted, or read after a
// restart) streams closer to the disk's speed (make bench's pull-cold,
// 1 GiB: 1402 and 1428 MB/s against 1232 and 1116 without). Failure only
// loses the hint.
func adviseSequential(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_SEQUENTIAL)
}

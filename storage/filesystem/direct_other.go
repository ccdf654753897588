//go:build !linux

package filesystem

import (
	"errors"
	"os"
)

// openUpload opens an upload file for buffered I/O: direct I/O is used on
// Linux only.
func openUpload(path string, flags int) (*uploadFile, error) {
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, err
	}
	return &uploadFile{File: f}, nil
}

func (f *uploadFile) buffered() error { return errors.New("no direct I/O to turn off") }

// startWriteback is a no-op where sync_file_range does not exist.
func startWriteback(*os.File, int64, int64) {}

// adviseSequential is a no-op where posix_fadvise is not used.
func adviseSequential(*os.File) {}

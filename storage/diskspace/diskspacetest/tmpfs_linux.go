// Package diskspacetest gives tests a small filesystem they can fill.
package diskspacetest

import (
	"errors"
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// Tmpfs mounts a tmpfs of size bytes on a new directory, unmounts it when
// the test ends, and returns the directory. Mounting needs root: a test
// that cannot mount is skipped with the reason, except under CI=true as
// root, where a refusal is a broken machine and fails the test.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755", size))
	if err != nil {
		reason := fmt.Sprintf("cannot mount a %d-byte tmpfs on %s (uid %d): %v", size, dir, os.Getuid(), err)
		if os.Getuid() == 0 && os.Getenv("CI") == "true" {
			t.Fatalf("%s; root under CI must be able to mount (add CAP_SYS_ADMIN)", reason)
		}
		t.Skip(reason)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(dir, unix.MNT_DETACH)
			}
			if err != nil {
				t.Errorf("unmount %s: %v", dir, err)
			}
		}
	})
	return dir
}

// Fill writes a file named name in dir until the filesystem is full and
// returns its size. Deleting the file gives the space back.
func Fill(t testing.TB, dir, name string) int64 {
	t.Helper()
	f, err := os.Create(dir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for len(buf) > 0 {
		m, err := f.Write(buf)
		n += int64(m)
		switch {
		case errors.Is(err, unix.ENOSPC):
			buf = buf[:len(buf)/2] // top up the last pages
		case err != nil:
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
	return n
}

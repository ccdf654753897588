package filesystem

import (
	"context"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDirectIO: on a filesystem that takes O_DIRECT (the test's temp dir,
// ext4 or tmpfs on current kernels), an upload's bytes bypass the page
// cache: its file is open for direct I/O.
func TestDirectIO(t *testing.T) {
	dir := t.TempDir()
	probe, err := openUpload(dir+"/probe", syscall.O_RDWR|syscall.O_CREAT)
	if err != nil {
		t.Fatal(err)
	}
	_ = probe.Close()
	if !probe.direct {
		t.Skipf("%s does not take O_DIRECT", dir)
	}
	s, err := New(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.Writer(context.Background(), "u", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Write(make([]byte, 3*chunkSize)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.State(); err != nil {
		t.Fatal(err)
	}
	flags, err := unix.FcntlInt(w.(*writer).f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&syscall.O_DIRECT == 0 {
		t.Errorf("upload file flags %#x: no O_DIRECT", flags)
	}
}

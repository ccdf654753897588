package scrub

import "golang.org/x/sys/unix"

// readOnce keeps a scrub's reads of b out of the page cache, where it can
// tell: when none of b's pages was cached before the scrub read it, the
// function it returns drops them after, so that reading back terabytes
// does not push out the layers pulls use. A blob already cached, even in
// part, is left as it is, and so is every blob on a kernel without
// cachestat (before 6.5) or a store whose blobs are not files.
func readOnce(b any) (after func()) {
	f, ok := b.(interface{ Fd() uintptr })
	if !ok {
		return func() {}
	}
	fd := f.Fd()
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(fd), &unix.CachestatRange{}, &st, 0); err != nil || st.Cache > 0 {
		return func() {}
	}
	return func() { _ = unix.Fadvise(int(fd), 0, 0, unix.FADV_DONTNEED) }
}

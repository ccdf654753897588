//go:build !linux

package scrub

// readOnce leaves the page cache as it is off Linux.
func readOnce(any) (after func()) { return func() {} }

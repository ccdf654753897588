//go:build !linux

package metadb

// mmapFlags: see mmap_linux.go.
const mmapFlags = 0

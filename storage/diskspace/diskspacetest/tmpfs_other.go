//go:build !linux

// Package diskspacetest gives tests a small filesystem they can fill.
package diskspacetest

import "testing"

// Tmpfs skips the test: only Linux has tmpfs mounts.
func Tmpfs(t testing.TB, size int64) string {
	t.Skip("tmpfs needs Linux")
	return ""
}

// Fill is unused where Tmpfs skips.
func Fill(t testing.TB, dir, name string) int64 {
	t.Skip("tmpfs needs Linux")
	return 0
}

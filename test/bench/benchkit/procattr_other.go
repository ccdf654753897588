//go:build !linux

package benchkit

import "syscall"

// childProcAttr uses the defaults outside Linux (no parent-death signal).
func childProcAttr() *syscall.SysProcAttr { return nil }

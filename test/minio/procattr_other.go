//go:build !linux

package minio

import "syscall"

// procAttr uses the defaults outside Linux (no parent-death signal).
func procAttr() *syscall.SysProcAttr { return nil }

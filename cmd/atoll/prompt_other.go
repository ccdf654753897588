//go:build !linux

package main

import "io"

// promptPassword has no terminal support here: the password comes from
// standard input.
func promptPassword(string, io.Writer) (string, bool, error) { return "", false, nil }

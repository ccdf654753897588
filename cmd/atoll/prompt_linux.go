package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// promptPassword reads a password from the terminal without echoing it.
// ok is false when there is no terminal.
func promptPassword(prompt string, stderr io.Writer) (pass string, ok bool, err error) {
	tty, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return "", false, nil
	}
	defer tty.Close()
	fd := int(tty.Fd())
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return "", false, nil
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return "", false, nil
	}
	defer func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }()
	fmt.Fprint(stderr, prompt)
	line, err := bufio.NewReader(tty).ReadString('\n')
	fmt.Fprintln(stderr)
	if err != nil {
		return "", true, fmt.Errorf("reading the password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), true, nil
}

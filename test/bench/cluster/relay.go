package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/atollhq/atoll/test/bench/benchkit"
)

// The bare relay is the pull scenario's reference for what a one-hop
// proxy can do on this machine: a process of its own (the bench binary
// run with -relay), with no registry logic, that accepts TCP connections
// and passes their bytes to a member and back. A client pulling a blob
// through it pays what a proxying member cannot avoid (one more process,
// two more socket copies of every byte), and nothing else.
//
// Relay modes, for the member-to-client direction:
//   - splice: io.Copy between the two *net.TCPConn (splice(2) through a
//     pipe, the bytes never in user space);
//   - copy: io.CopyBuffer through a 1 MiB buffer (read(2), write(2)).
//
// The client-to-member direction (requests) is a plain io.Copy.

// Relay modes.
const (
	relaySplice = "splice"
	relayCopy   = "copy"
)

// relayBuf is the copy mode's buffer size.
const relayBuf = 1 << 20

// runRelay serves the relay pairs "listen=target,..." in mode until the
// process is signalled.
func runRelay(pairs, mode string) error {
	if mode != relaySplice && mode != relayCopy {
		return fmt.Errorf("-relay-mode %q: want %s or %s", mode, relaySplice, relayCopy)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	for _, p := range benchkit.SplitList(pairs) {
		listen, target, ok := strings.Cut(p, "=")
		if !ok {
			return fmt.Errorf("-relay %q: want listen=target", p)
		}
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return fmt.Errorf("relay: %w", err)
		}
		defer l.Close()
		go func() { errc <- serveRelay(l, target, mode) }()
	}
	select {
	case <-ctx.Done():
		return nil
	case err := <-errc:
		return err
	}
}

// serveRelay relays every connection l accepts to target until l fails.
func serveRelay(l net.Listener, target, mode string) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("relay accept: %w", err)
		}
		go relayConn(c.(*net.TCPConn), target, mode)
	}
}

// relayConn passes c's bytes to a new connection to target and the
// answers back, until either side closes.
func relayConn(c *net.TCPConn, target, mode string) {
	defer c.Close()
	nc, err := net.DialTimeout("tcp", target, 3*time.Second)
	if err != nil {
		fmt.Fprintf(os.Stderr, "relay: dial %s: %v\n", target, err)
		return
	}
	t := nc.(*net.TCPConn)
	defer t.Close()
	go func() {
		_, _ = io.Copy(t, c)
		_ = t.CloseWrite()
	}()
	if mode == relaySplice {
		_, err = io.Copy(c, t)
	} else {
		_, err = io.CopyBuffer(onlyWriter{c}, onlyReader{t}, make([]byte, relayBuf))
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "relay: %s: %v\n", target, err)
	}
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo, so io.CopyBuffer
// uses its buffer.
type (
	onlyWriter struct{ io.Writer }
	onlyReader struct{ io.Reader }
)

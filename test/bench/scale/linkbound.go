package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

// The link bound: what one capped link carries for a bare TCP transfer,
// with nothing of atoll in the way, measured in the same run as atoll's
// pushes and pulls across links capped the same way. A sink (this program
// run with -link-sink inside a host's namespace) answers two requests on a
// connection, each a one-byte op and an 8-byte size (big endian):
//
//   - 'w': it reads size bytes and answers one byte: the client's push;
//   - 'r': it writes size bytes and closes: the client's pull.

// sinkBuf is the size of the sink's and the client's reads and writes.
const sinkBuf = 1 << 20

// runSink serves the link bound's requests on addr until killed.
func runSink(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("link sink: %w", err)
	}
	defer l.Close()
	for {
		c, err := l.Accept()
		if err != nil {
			return fmt.Errorf("link sink: %w", err)
		}
		go func() {
			defer c.Close()
			if err := serveSink(c); err != nil {
				fmt.Fprintln(os.Stderr, "link sink:", err)
			}
		}()
	}
}

func serveSink(c net.Conn) error {
	var hdr [9]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return err
	}
	size := int64(binary.BigEndian.Uint64(hdr[1:]))
	switch hdr[0] {
	case 'w':
		if _, err := io.CopyBuffer(io.Discard, io.LimitReader(c, size), make([]byte, sinkBuf)); err != nil {
			return err
		}
		_, err := c.Write([]byte{1})
		return err
	case 'r':
		_, err := io.CopyBuffer(c, io.LimitReader(zeros{}, size), make([]byte, sinkBuf))
		return err
	}
	return fmt.Errorf("unknown op %q", hdr[0])
}

// zeros yields zero bytes forever.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// linkTransfer sends size bytes to the sink at addr (push) or fetches
// them from it (!push) and returns MB/s, from the dial to the sink's
// last byte received (its answer for a push, EOF for a pull).
func linkTransfer(addr string, size int64, push bool) (float64, error) {
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, fmt.Errorf("link bound: %w", err)
	}
	defer c.Close()
	var hdr [9]byte
	hdr[0] = 'r'
	if push {
		hdr[0] = 'w'
	}
	binary.BigEndian.PutUint64(hdr[1:], uint64(size))
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, fmt.Errorf("link bound: %w", err)
	}
	buf := make([]byte, sinkBuf)
	if push {
		if _, err := io.CopyBuffer(onlyWriter{c}, io.LimitReader(zeros{}, size), buf); err != nil {
			return 0, fmt.Errorf("link bound: sending: %w", err)
		}
		if _, err := io.ReadFull(c, buf[:1]); err != nil {
			return 0, fmt.Errorf("link bound: the sink's answer: %w", err)
		}
	} else {
		n, err := io.CopyBuffer(io.Discard, onlyReader{c}, buf)
		if err == nil && n != size {
			err = errors.New("short read")
		}
		if err != nil {
			return 0, fmt.Errorf("link bound: receiving (%d of %d bytes): %w", n, size, err)
		}
	}
	return float64(size) / time.Since(start).Seconds() / 1e6, nil
}

// onlyWriter and onlyReader hide ReadFrom and WriteTo, so io.CopyBuffer
// uses its buffer, as the registry clients' reads and writes do.
type (
	onlyWriter struct{ io.Writer }
	onlyReader struct{ io.Reader }
)

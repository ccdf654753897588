package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// secRawRequest writes req on a new connection to addr while reading the
// answer, as a client that does not stop sending when the server answers
// early. It returns the answer's status and what reading after the answer
// gave: io.EOF (or a reset) when the server closed the connection.
func secRawRequest(addr string, req []byte) (status int, after error, err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	go func() { _, _ = conn.Write(req) }() // fails once the server hangs up
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("reading the answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close || resp.StatusCode == http.StatusRequestHeaderFieldsTooLarge {
		_, after = br.ReadByte()
	}
	return resp.StatusCode, after, nil
}

// secHeaders is a GET of path whose headers are count lines "X-Pad-i: v".
func secHeaders(path string, count int, v string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: atoll\r\n", path)
	for i := range count {
		fmt.Fprintf(&b, "X-Pad-%d: %s\r\n", i, v)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestSecurityHugeHeaders sends a running member requests with more than
// 1 MiB of headers, in many lines or in one, from many connections at once:
// each gets 431 and its connection closed, and the member keeps serving.
// Many small headers under the limit are served as usual.
func TestSecurityHugeHeaders(t *testing.T) {
	n := startNode(t, t.TempDir())
	for _, c := range []struct {
		name   string
		req    []byte
		status int
	}{
		{"2 MiB in 2048 headers", secHeaders("/v2/", 2048, strings.Repeat("a", 1000)), http.StatusRequestHeaderFieldsTooLarge},
		{"one header of 1.5 MiB", secHeaders("/v2/", 1, strings.Repeat("a", 3<<19)), http.StatusRequestHeaderFieldsTooLarge},
		{"8 MiB of headers", secHeaders("/v2/_catalog", 8192, strings.Repeat("b", 1020)), http.StatusRequestHeaderFieldsTooLarge},
		{"20000 small headers", secHeaders("/v2/", 20000, "v"), http.StatusOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, after, err := secRawRequest(n.Addr(), c.req)
			if err != nil {
				t.Fatal(err)
			}
			if status != c.status {
				t.Fatalf("status %d, want %d", status, c.status)
			}
			if c.status == http.StatusRequestHeaderFieldsTooLarge && !errors.Is(after, io.EOF) && !errors.Is(after, syscall.ECONNRESET) {
				t.Errorf("after the 431 the connection gave %v, want it closed", after)
			}
		})
	}

	// Fifty such clients at once.
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	req := secHeaders("/v2/", 2048, strings.Repeat("c", 1000))
	for range 50 {
		wg.Go(func() {
			status, _, err := secRawRequest(n.Addr(), req)
			if err == nil && status != http.StatusRequestHeaderFieldsTooLarge {
				err = fmt.Errorf("status %d", status)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("one of 50 concurrent clients with 2 MiB of headers: %v", err)
		}
	}

	if !n.running() {
		t.Fatal("the member exited")
	}
	if r := secDo(t, nil, "GET", n.URL()+"/v2/", secAnonymous, nil, nil); r.status != http.StatusOK {
		t.Fatalf("GET /v2/ after the huge headers: %d %s", r.status, r.body)
	}
}

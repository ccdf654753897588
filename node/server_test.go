package node

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// TestServerLimits checks the limits every member's HTTP server runs with:
// a client must send its headers within a deadline and in at most 1 MiB,
// and idle keep-alive connections are closed.
func TestServerLimits(t *testing.T) {
	srv := newServer(http.NotFoundHandler())
	if srv.ReadHeaderTimeout <= 0 || srv.ReadHeaderTimeout > time.Minute {
		t.Errorf("ReadHeaderTimeout = %v, want a bound of at most a minute", srv.ReadHeaderTimeout)
	}
	if srv.IdleTimeout <= 0 {
		t.Errorf("IdleTimeout = %v, want a bound", srv.IdleTimeout)
	}
	if srv.MaxHeaderBytes <= 0 || srv.MaxHeaderBytes > 1<<20 {
		t.Errorf("MaxHeaderBytes = %d, want 1 MiB at most", srv.MaxHeaderBytes)
	}
	// ReadTimeout and WriteTimeout must stay off: they would cut a
	// multi-gigabyte layer upload or download on a slow link.
	if srv.ReadTimeout != 0 || srv.WriteTimeout != 0 {
		t.Errorf("ReadTimeout %v, WriteTimeout %v: would cut long blob transfers", srv.ReadTimeout, srv.WriteTimeout)
	}
}

// TestSlowlorisCutOff sends a request's headers one line every 50ms, the
// slowloris attack that holds a connection (and a goroutine) forever on a
// server without a header deadline. The member's server, its
// ReadHeaderTimeout shortened to 200ms for the test, closes the connection
// without serving the request.
func TestSlowlorisCutOff(t *testing.T) {
	served := make(chan struct{}, 1)
	ts := httptest.NewUnstartedServer(nil)
	ts.Config = newServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		served <- struct{}{}
	}))
	const timeout = 200 * time.Millisecond
	ts.Config.ReadHeaderTimeout = timeout
	ts.Start()
	defer ts.Close()

	start := time.Now() // before the server can start its deadline
	conn, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v2/ HTTP/1.1\r\nHost: atoll\r\n"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := fmt.Fprintf(conn, "X-Slow-%d: a\r\n", i); err != nil {
				return // the server hung up
			}
		}
	}()

	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(conn)
	took := time.Since(start)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v of slow headers", took.Round(time.Millisecond))
	case len(served) > 0:
		t.Fatalf("the request was served")
	case took < timeout-10*time.Millisecond:
		t.Fatalf("connection closed after %v, before the %v header timeout", took, timeout)
	case took > timeout+2*time.Second:
		t.Fatalf("connection closed only after %v (header timeout %v)", took, timeout)
	}
	t.Logf("slow client cut off after %v (header timeout %v), read %q, %v", took.Round(time.Millisecond), timeout, b, err)

	// The server still serves well-behaved clients.
	resp, err := http.Get(ts.URL + "/v2/")
	if err != nil {
		t.Fatalf("request after the slow client: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("request after the slow client: %s", resp.Status)
	}
}

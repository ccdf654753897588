package e2e

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// Slow clients delay nothing but themselves: the upload purge skips an
// upload a request is working on instead of waiting for it, a body that
// sends nothing for http.readidle is cut off, and a status GET or a DELETE
// of an upload answers while a PATCH on it is in flight.

// slowBody is a request in flight whose body the test feeds by hand.
type slowBody struct {
	pw   *io.PipeWriter
	done chan struct{}
	resp *http.Response // once done, unless err
	err  error
	end  time.Time // when the response or the error came
}

// startSlowBody sends a request to url whose body is written with send;
// the body stays open until finish or abandon.
func startSlowBody(t *testing.T, method, url string) *slowBody {
	t.Helper()
	pr, pw := io.Pipe()
	req, err := http.NewRequest(method, url, pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	b := &slowBody{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		b.resp, b.err = http.DefaultClient.Do(req)
		if b.err == nil {
			_, _ = io.Copy(io.Discard, b.resp.Body)
			b.resp.Body.Close()
		}
		b.end = time.Now()
	}()
	t.Cleanup(b.abandon)
	return b
}

// send writes p to the body; it fails once the server stopped reading.
func (b *slowBody) send(p []byte) error {
	_, err := b.pw.Write(p)
	return err
}

// finish ends the body and waits for the response.
func (b *slowBody) finish(timeout time.Duration) (*http.Response, error) {
	_ = b.pw.Close()
	return b.wait(timeout)
}

// abandon fails the body, as a client that goes away.
func (b *slowBody) abandon() {
	b.pw.CloseWithError(errors.New("client gone"))
	<-b.done
}

// wait waits up to timeout for the request to end.
func (b *slowBody) wait(timeout time.Duration) (*http.Response, error) {
	select {
	case <-b.done:
		return b.resp, b.err
	case <-time.After(timeout):
		return nil, fmt.Errorf("no answer within %v", timeout)
	}
}

// ended reports whether the request ended.
func (b *slowBody) ended() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// TestTricklingPatchDelaysNoPurge: a PATCH trickling a byte every 300ms,
// longer than the purge age, does not keep ten abandoned 5 MiB uploads
// alive, and is itself served to the end.
func TestTricklingPatchDelaysNoPurge(t *testing.T) {
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: purgeEnv})
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()

	slowLoc, err := c.startUpload(ctx, "slow/trickle")
	if err != nil {
		t.Fatal(err)
	}
	trickle := startSlowBody(t, "PATCH", n.URL()+slowLoc)
	stopTrickle := make(chan struct{})
	trickled := make(chan int)
	go func() {
		sent := 0
		defer func() { trickled <- sent }()
		for {
			if trickle.send([]byte{'x'}) != nil {
				return
			}
			sent++
			select {
			case <-stopTrickle:
				return
			case <-time.After(300 * time.Millisecond): // the client's pace, not synchronisation
			}
		}
	}()

	start := time.Now()
	var abandoned []string
	for range 10 {
		loc, err := c.startUpload(ctx, "slow/abandoned")
		if err != nil {
			t.Fatal(err)
		}
		if loc, err = c.patchChunk(ctx, loc, randomBytes(5<<20), 0); err != nil {
			t.Fatal(err)
		}
		abandoned = append(abandoned, loc)
	}
	took := pollUntil(t, 30*time.Second, "the 10 abandoned uploads purged", func() error {
		if trickle.ended() {
			return fmt.Errorf("the trickling PATCH ended early: %v", trickle.err)
		}
		left := 0
		for _, loc := range abandoned {
			size, err := c.uploadStatus(ctx, loc)
			if err != nil {
				return err
			}
			if size >= 0 {
				left++
			}
		}
		if left > 0 {
			return fmt.Errorf("%d of 10 abandoned uploads still there", left)
		}
		return nil
	})
	files, _ := uploadFiles(n.dataDir)
	if len(files) != 1 {
		t.Errorf("upload files left: %v, want the trickling upload's only", files)
	}
	close(stopTrickle)
	sent := <-trickled
	resp, err := trickle.finish(10 * time.Second)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("the trickling PATCH after %d bytes: %v %v", sent, resp, err)
	}
	if got := resp.Header.Get("Range"); got != fmt.Sprintf("0-%d", sent-1) {
		t.Errorf("the trickling PATCH answers Range %q after %d bytes", got, sent)
	}
	t.Logf("10 abandoned 5 MiB uploads purged %v after they were written (purge age %v) while a PATCH trickled %d bytes over %v",
		took.Round(100*time.Millisecond), purgeAge, sent, time.Since(start).Round(100*time.Millisecond))
}

// TestIdleBodyCutOff: with http.readidle at 2s, a PATCH and a monolithic
// POST whose bodies stop sending are answered 408 about 2s after their
// last byte, and the session takes the upload again.
func TestIdleBodyCutOff(t *testing.T) {
	const idle = 2 * time.Second
	n := startNodeWith(t, t.TempDir(), nodeOptions{env: []string{"REGISTRY_HTTP_READIDLE=" + idle.String()}})
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()
	data := randomBytes(3 << 20)

	loc, err := c.startUpload(ctx, "slow/idle")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, method, url string }{
		{"PATCH", "PATCH", n.URL() + loc},
		{"monolithic POST", "POST", n.URL() + "/v2/slow/idle/blobs/uploads/?digest=" + digest.FromBytes(data).String()},
	} {
		b := startSlowBody(t, tc.method, tc.url)
		if err := b.send(data[:1<<20]); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		last := time.Now()
		resp, err := b.wait(idle + 10*time.Second)
		if err != nil {
			t.Fatalf("%s idle for %v: %v", tc.name, time.Since(last).Round(time.Millisecond), err)
		}
		after := b.end.Sub(last)
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("%s idle: %s, want 408", tc.name, resp.Status)
		}
		if after < idle-100*time.Millisecond || after > idle+3*time.Second {
			t.Errorf("%s cut off %v after its last byte; readidle is %v", tc.name, after, idle)
		}
		t.Logf("%s cut off %v after its last byte (readidle %v): %s", tc.name, after.Round(10*time.Millisecond), idle, resp.Status)
	}
	if size, err := c.uploadStatus(ctx, loc); err != nil || size != 0 {
		t.Fatalf("the session after the cut: %d bytes, %v; want 0", size, err)
	}
	if loc, err = c.patchChunk(ctx, loc, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := c.finishUpload(ctx, loc, digest.FromBytes(data), nil, int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

// TestUploadStatusAndDeleteDuringPatch: while a PATCH on a session is in
// flight, stalled, a status GET answers at once with the last durable
// offset, and a DELETE answers at once and ends the PATCH.
func TestUploadStatusAndDeleteDuringPatch(t *testing.T) {
	n := startNode(t, filepath.Join(t.TempDir(), "data"))
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()
	loc, err := c.startUpload(ctx, "slow/busy")
	if err != nil {
		t.Fatal(err)
	}
	const durable = 1 << 20
	if loc, err = c.patchChunk(ctx, loc, randomBytes(durable), 0); err != nil {
		t.Fatal(err)
	}
	id := path.Base(strings.SplitN(loc, "?", 2)[0])
	b := startSlowBody(t, "PATCH", n.URL()+loc)
	if err := b.send(randomBytes(2 << 20)); err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 10*time.Second, "the PATCH's bytes reach the upload file", func() error {
		fi, err := os.Stat(filepath.Join(n.dataDir, "uploads", id))
		if err != nil {
			return err
		}
		if fi.Size() <= durable {
			return fmt.Errorf("%d bytes", fi.Size())
		}
		return nil
	})

	quick := func(what string, f func(ctx context.Context) error) time.Duration {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := f(ctx); err != nil {
			t.Fatalf("%s during the PATCH: %v", what, err)
		}
		took := time.Since(start)
		if took > 2*time.Second {
			t.Errorf("%s during the PATCH took %v", what, took)
		}
		return took
	}
	statusTook := quick("status GET", func(ctx context.Context) error {
		size, err := c.uploadStatus(ctx, loc)
		if err == nil && size != durable {
			err = fmt.Errorf("status reports %d bytes, want the %d made durable", size, durable)
		}
		return err
	})
	deleteTook := quick("DELETE", func(ctx context.Context) error {
		_, err := c.do(ctx, "DELETE", loc, nil, nil, http.StatusNoContent)
		return err
	})
	resp, err := b.wait(5 * time.Second)
	if err == nil && resp.StatusCode < 400 {
		t.Errorf("the PATCH cut by the DELETE answered %s", resp.Status)
	}
	if size, err := c.uploadStatus(ctx, loc); err != nil || size != -1 {
		t.Errorf("after the DELETE the session answers %d, %v; want 404", size, err)
	}
	files, _ := uploadFiles(n.dataDir)
	if len(files) > 0 {
		t.Errorf("upload files left after the DELETE: %v", files)
	}
	status := "error"
	if resp != nil {
		status = resp.Status
	}
	t.Logf("during a stalled PATCH: status GET %v, DELETE %v; the PATCH then ended with %s",
		statusTook.Round(time.Millisecond), deleteTook.Round(time.Millisecond), status)
}

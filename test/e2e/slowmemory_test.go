package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/atollhq/atoll/test/minio"
)

// TestSlowUploadsBoundMemory: uploads whose clients send some bytes and
// then stall do not hold the registry's memory without bound.
//
// On the filesystem, uploads written with direct I/O hold a 2 MiB buffer
// from their first byte to their last; 400 clients that sent 2 MB held
// 825 MB of a member's memory before those buffers shared a budget
// (256 MiB), past which uploads go through the page cache. On S3 an
// upload holds its next part (16 MiB) until it is full; past a budget of
// 256 MiB the parts go to spill files on local disk.
//
// The test waits until the member has read every byte the clients sent
// (nothing left in its sockets' receive queues), so a member that keeps
// them gets measured with them. Two of the stalled uploads then finish,
// one from either side of the budget, and read back whole.
func TestSlowUploadsBoundMemory(t *testing.T) {
	t.Run("filesystem", func(t *testing.T) {
		// The bound is the chunk budget plus, for each upload, its small
		// chunks (four of 64 KiB) and what its connection costs; 299 MiB
		// were seen. Without a budget the uploads hold 600 MiB.
		const uploads = 300
		n := startNode(t, t.TempDir())
		slowUploadsBoundMemory(t, n, uploads, 2_000_000, 256<<20+uploads*384<<10, nil)
	})
	t.Run("s3", func(t *testing.T) {
		// The bound is the part budget plus, for each upload, what its
		// connection costs. Without a budget the uploads hold 1.2 GB.
		// The member's metrics count the parts in memory (16 of 16 MiB)
		// and the rest, spilled.
		const uploads = 100
		m := minio.Start(t)
		debug := freeAddr(t)
		n := startNodeWith(t, t.TempDir(), nodeOptions{env: append(s3Env(m, "slow"), "REGISTRY_HTTP_DEBUG_ADDR="+debug)})
		slowUploadsBoundMemory(t, n, uploads, 12_000_000, 256<<20+uploads*512<<10, func(c *client) {
			for series, want := range map[string]float64{"atoll_upload_parts_in_memory": 16, "atoll_upload_parts_spilled": uploads - 16} {
				if got, err := metricValue(context.Background(), c, "http://"+debug+"/metrics", series); err != nil || got != want {
					t.Errorf("%s = %v (%v), want %v", series, got, err, want)
				}
			}
		})
	})
}

// slowUploadsBoundMemory starts uploads to n that send sent bytes each and
// stall, and fails if n's RSS grows by more than budget; stalled, if not
// nil, checks n while the uploads stall.
func slowUploadsBoundMemory(t *testing.T, n *Node, uploads, sent int, budget int64, stalled func(*client)) {
	c := newClient(n.URL())
	defer c.close()
	ctx := context.Background()
	pid := n.cmd.Process.Pid
	before, err := rss(pid)
	if err != nil {
		t.Fatal(err)
	}

	data := randomBytes(sent + 1000)
	bodies := make([]*slowBody, uploads)
	for i := range bodies {
		loc, err := c.startUpload(ctx, "slow/memory")
		if err != nil {
			t.Fatal(err)
		}
		bodies[i] = startSlowBody(t, "PATCH", n.URL()+loc)
		if err := bodies[i].send(data[:sent]); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	port := addrPort(t, n.Addr())
	deadline := time.Now().Add(30 * time.Second)
	for queued := receiveQueued(t, port); queued > 0; queued = receiveQueued(t, port) {
		if time.Now().After(deadline) {
			t.Fatalf("after 30s the member still has %d bytes of %d uploads unread", queued, uploads)
		}
		time.Sleep(100 * time.Millisecond)
	}
	after, err := rss(pid)
	if err != nil {
		t.Fatal(err)
	}
	grown := after - before
	t.Logf("%d uploads stalled after %d bytes each: the member's RSS grew %d MiB (%d to %d MiB), bound %d MiB", uploads, sent, grown>>20, before>>20, after>>20, budget>>20)
	if grown > budget {
		t.Errorf("the member's RSS grew %d MiB for %d stalled uploads, more than %d MiB", grown>>20, uploads, budget>>20)
	}
	if stalled != nil {
		stalled(c)
	}

	whole := data[:sent+1000]
	d := digest.FromBytes(whole)
	for _, i := range []int{0, uploads - 1} {
		if err := bodies[i].send(whole[sent:]); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		resp, err := bodies[i].finish(30 * time.Second)
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("upload %d: PATCH answered %s", i, resp.Status)
		}
		if err := c.finishUpload(ctx, resp.Header.Get("Location"), d, nil, int64(len(whole))); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if err := c.getBlob(ctx, "slow/memory", d, int64(len(whole))); err != nil {
		t.Fatal(err)
	}
}

// rss is process pid's resident memory in bytes.
func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// receiveQueued sums the receive queues of the TCP sockets bound to local
// port: bytes that arrived but the process has not read.
func receiveQueued(t *testing.T, port int) int64 {
	t.Helper()
	var total int64
	tcpSockets(t, map[int]bool{port: true}, func(fields []string) {
		_, rx, _ := strings.Cut(fields[4], ":")
		q, err := strconv.ParseInt(rx, 16, 64)
		if err != nil {
			t.Fatalf("/proc/net/tcp: rx_queue %q: %v", fields[4], err)
		}
		total += q
	})
	return total
}

package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// rrBalancer is a round-robin TCP load balancer, like Swarm's routing mesh
// or round-robin DNS: each accepted connection goes to the next backend
// (skipping one that refuses), bytes copied both ways untouched.
type rrBalancer struct {
	ln       net.Listener
	backends []string // host:port

	mu     sync.Mutex
	next   int
	picks  []int // backend index of each connection, in accept order
	open   map[net.Conn]bool
	closed bool
	wg     sync.WaitGroup
}

// startBalancer listens on a free loopback port in front of backends; the
// test's cleanup closes it and every connection through it.
func startBalancer(t *testing.T, backends []string) *rrBalancer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("balancer: %v", err)
	}
	b := &rrBalancer{ln: ln, backends: backends, open: map[net.Conn]bool{}}
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		b.closed = true
		for c := range b.open {
			c.Close()
		}
		b.mu.Unlock()
		b.wg.Wait()
	})
	return b
}

// Addr is the balancer's host:port.
func (b *rrBalancer) Addr() string { return b.ln.Addr().String() }

func (b *rrBalancer) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.serve(c)
		}()
	}
}

// serve pipes one client connection to the next backend that accepts.
func (b *rrBalancer) serve(client net.Conn) {
	defer client.Close()
	b.mu.Lock()
	first := b.next
	b.next = (b.next + 1) % len(b.backends)
	b.mu.Unlock()
	var backend net.Conn
	for i := range b.backends {
		idx := (first + i) % len(b.backends)
		c, err := net.DialTimeout("tcp", b.backends[idx], 2*time.Second)
		if err == nil {
			backend = c
			b.mu.Lock()
			b.picks = append(b.picks, idx)
			b.mu.Unlock()
			break
		}
	}
	if backend == nil {
		return
	}
	defer backend.Close()
	if !b.track(client, backend) {
		return
	}
	defer b.untrack(client, backend)
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(backend, client)
		_ = backend.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(client, backend)
	_ = client.(*net.TCPConn).CloseWrite()
	<-done
}

// track registers open connections, unless the balancer is closed.
func (b *rrBalancer) track(cs ...net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	for _, c := range cs {
		b.open[c] = true
	}
	return true
}

func (b *rrBalancer) untrack(cs ...net.Conn) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range cs {
		delete(b.open, c)
	}
}

// connections returns how many connections went to each backend, and the
// backend index of each connection from the n-th on.
func (b *rrBalancer) connections(from int) (perBackend []int, picks []int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	perBackend = make([]int, len(b.backends))
	for _, p := range b.picks {
		perBackend[p]++
	}
	if from < len(b.picks) {
		picks = append(picks, b.picks[from:]...)
	}
	return perBackend, picks
}

// TestClusterRoutingMesh puts a round-robin balancer in front of three
// members and pushes and pulls through it with a client that opens a new
// connection for every request, so the requests of one upload land on
// different members; once with proxy routing, once with redirect routing.
func TestClusterRoutingMesh(t *testing.T) {
	for _, routing := range []string{"proxy", "redirect"} {
		t.Run(routing, func(t *testing.T) { testRoutingMesh(t, routing) })
	}
}

func testRoutingMesh(t *testing.T, routing string) {
	c := startLoopbackCluster(t, 3, clusterOptions{replicas: 2, routing: routing})
	backends := make([]string, len(c.members))
	for i, m := range c.members {
		backends[i] = m.Addr()
	}
	lb := startBalancer(t, backends)
	l := newAckLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// One upload by hand: POST, PATCH and PUT, each on a new connection,
	// so each reaches the next member; the session lives on the first.
	hc := &http.Client{Transport: l.wrap(&http.Transport{DisableKeepAlives: true}), Timeout: 30 * time.Second}
	mc := &client{base: "http://" + lb.Addr(), hc: hc}
	data := []byte(strings.Repeat("routing mesh upload ", 4096))
	_, before := lb.connections(0)
	loc, err := mc.startUpload(ctx, "mesh/manual")
	if err != nil {
		t.Fatal(err)
	}
	if loc, err = mc.patchChunk(ctx, loc, data[:len(data)/2], 0); err != nil {
		t.Fatal(err)
	}
	if err := mc.finishUpload(ctx, loc, digest.FromBytes(data), data[len(data)/2:], int64(len(data)/2)); err != nil {
		t.Fatal(err)
	}
	_, picks := lb.connections(len(before))
	if len(picks) != 3 || picks[0] == picks[1] || picks[1] == picks[2] || picks[0] == picks[2] {
		t.Errorf("POST, PATCH and PUT went to members %v, want three different ones", picks)
	} else {
		id := loc[strings.LastIndex(loc, "/")+1:]
		if u, err := url.Parse(id); err == nil {
			id = u.Path
		}
		if holder := c.members[picks[0]].name; !strings.HasPrefix(id, holder+".") {
			t.Errorf("upload %s was opened on %s", id, holder)
		}
		t.Logf("one upload: POST on %s, PATCH on %s, PUT on %s, both forwarded to the session's member",
			c.members[picks[0]].name, c.members[picks[1]].name, c.members[picks[2]].name)
	}

	images := newClusterImages(t, "mesh/"+routing, 4, 64<<10)
	lbClient := newGGCRClient(lb.Addr(), l, false)
	took := pushAllImages(t, lbClient, images)
	redirectsBefore := l.status(http.StatusTemporaryRedirect)
	pullAndValidate(t, images, lbClient)
	redirects := l.status(http.StatusTemporaryRedirect) - redirectsBefore
	perBackend, _ := lb.connections(0)
	for i, n := range perBackend {
		if n == 0 {
			t.Errorf("the balancer sent no connection to %s", c.members[i].name)
		}
	}
	logMeasure(t, "routing %s behind a round-robin balancer: pushed %d images in %v; connections per member %v; %d redirects followed while pulling",
		routing, len(images), took.Round(time.Millisecond), perBackend, redirects)

	blobs := imageBlobs(images)
	blobs[digest.FromBytes(data)] = true
	p, _, _ := waitPlaced(t, 15*time.Second, c.members, blobs, 2)
	checkNonOwnerRead(t, ctx, c, p, images[0].repo, images[0].blobs, routing)
	if routing == "redirect" && redirects == 0 {
		t.Errorf("pulling through the balancer followed no redirect")
	}
	bases := memberBases(c.members)
	bases["balancer"] = "http://" + lb.Addr()
	l.verify(t, bases)
}

// checkNonOwnerRead asks a member that does not hold a blob of repo for it,
// without following redirects: with proxy routing it streams the blob, with
// redirect routing it answers 307 to a member holding it.
func checkNonOwnerRead(t *testing.T, ctx context.Context, c *testCluster, p blobPlacement, repo string, ds []digest.Digest, routing string) {
	t.Helper()
	httpOf := map[string]string{}
	for _, m := range c.members {
		httpOf[m.name] = m.Addr()
	}
	noFollow := &http.Client{
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, d := range ds {
		var asked *clusterMember
		for _, m := range c.members {
			if !slices.Contains(p[d], m.name) {
				asked = m
			}
		}
		if asked == nil {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, asked.URL()+"/v2/"+repo+"/blobs/"+d.String(), nil)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatalf("GET blob %s from %s: %v", d, asked.name, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch routing {
		case "proxy":
			if resp.StatusCode != http.StatusOK || digest.FromBytes(body) != d {
				t.Errorf("GET blob %s from %s, which does not hold it: %d with %d bytes hashing to %s", d, asked.name, resp.StatusCode, len(body), digest.FromBytes(body))
			}
		case "redirect":
			loc := resp.Header.Get("Location")
			u, err := url.Parse(loc)
			if resp.StatusCode != http.StatusTemporaryRedirect || err != nil {
				t.Errorf("GET blob %s from %s, which does not hold it: %d Location %q, want 307", d, asked.name, resp.StatusCode, loc)
				continue
			}
			holder := ""
			for _, h := range p[d] {
				if httpOf[h] == u.Host {
					holder = h
				}
			}
			if holder == "" {
				t.Errorf("GET blob %s from %s: 307 to %s, which is no holder %v", d, asked.name, loc, p[d])
			}
		}
		t.Logf("%s, which does not hold blob %.19s, answered %d (%s routing)", asked.name, d, resp.StatusCode, routing)
		return
	}
	t.Errorf("test bug: every member holds every blob of %s", repo)
}

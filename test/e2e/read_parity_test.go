package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// readParityConfig adds one configured response header (registry:2's
// http.headers) to every member, which a read through any member carries.
const readParityConfig = `http:
  headers:
    X-Content-Type-Options: [nosniff]
`

// TestClusterReadParity sends the same blob reads (GET, HEAD, ranges,
// suffix and multi-range, conditional GETs) to an owner of the blob and to
// the member of a 3-member cluster (R=2) that does not hold it, with each
// routing (a redirected client follows the 307): the answers are
// identical in status, headers (minus Date, hop-by-hop headers and the
// multipart boundary, which is random per answer) and body. Then, when
// proxying, 200 GETs through the non-owner may open only a handful of
// connections to the owners: the member's connections are pooled.
func TestClusterReadParity(t *testing.T) {
	for _, routing := range []string{"proxy", "redirect"} {
		t.Run(routing, func(t *testing.T) { testReadParity(t, routing) })
	}
}

func testReadParity(t *testing.T, routing string) {
	c := startLoopbackCluster(t, 3, clusterOptions{routing: routing, args: []string{"--config", ptWriteConfig(t, readParityConfig)}})
	data := make([]byte, 256<<10)
	_, _ = rand.Read(data)
	d := digest.FromBytes(data)
	const repo = "parity/blob"
	if err := newClient(c.members[0].URL()).pushMonolithic(context.Background(), repo, data); err != nil {
		t.Fatal(err)
	}
	var owners, others []*clusterMember
	pollUntil(t, 20*time.Second, "the blob on its two owners", func() error {
		owners, others = nil, nil
		for _, m := range c.members {
			files, err := m.blobFiles()
			if err != nil {
				return err
			}
			if files[d] {
				owners = append(owners, m)
			} else {
				others = append(others, m)
			}
		}
		if len(owners) != 2 {
			return fmt.Errorf("on %v, want 2 of 3 members", memberNames(owners))
		}
		return nil
	})
	path := "/v2/" + repo + "/blobs/" + d.String()
	etag := `"` + d.String() + `"`
	lastModified := readBlob(t, owners[0].URL()+path, http.MethodGet, nil).header.Get("Last-Modified")
	cases := []struct {
		name   string
		method string
		header map[string]string
	}{
		{"GET", http.MethodGet, nil},
		{"HEAD", http.MethodHead, nil},
		{"range", http.MethodGet, map[string]string{"Range": "bytes=100-4195"}},
		{"suffix range", http.MethodGet, map[string]string{"Range": "bytes=-500"}},
		{"open range", http.MethodGet, map[string]string{"Range": "bytes=200000-"}},
		{"multi-range", http.MethodGet, map[string]string{"Range": "bytes=0-9,1000-1999,-10"}},
		{"unsatisfiable range", http.MethodGet, map[string]string{"Range": "bytes=300000-400000"}},
		{"If-None-Match", http.MethodGet, map[string]string{"If-None-Match": etag}},
		{"If-None-Match other", http.MethodGet, map[string]string{"If-None-Match": `"sha256:0"`}},
		{"HEAD If-None-Match", http.MethodHead, map[string]string{"If-None-Match": etag}},
		{"If-Modified-Since", http.MethodGet, map[string]string{"If-Modified-Since": lastModified}},
		{"If-Range ETag", http.MethodGet, map[string]string{"If-Range": etag, "Range": "bytes=10-19"}},
		{"If-Range stale ETag", http.MethodGet, map[string]string{"If-Range": `"sha256:0"`, "Range": "bytes=10-19"}},
		{"If-Range date", http.MethodGet, map[string]string{"If-Range": lastModified, "Range": "bytes=10-19"}},
	}
	answers := func(m *clusterMember) []parityAnswer {
		var out []parityAnswer
		for i, tc := range cases {
			h := map[string]string{"X-Request-Id": "parity-" + strconv.Itoa(i)}
			for k, v := range tc.header {
				h[k] = v
			}
			out = append(out, readBlob(t, m.URL()+path, tc.method, h))
		}
		return out
	}
	got := answers(others[0])
	var diffs []string
	for _, o := range owners {
		want := answers(o)
		diffs = nil
		for i, tc := range cases {
			if d := got[i].diff(want[i]); d != "" {
				diffs = append(diffs, fmt.Sprintf("%s: non-owner %s, owner %s: %s", tc.name, others[0].name, o.name, d))
			}
		}
		if len(diffs) == 0 {
			break // the non-owner answers as this owner does
		}
	}
	for _, d := range diffs {
		t.Error(d)
	}
	if want := data[100:4196]; !bytes.Equal(got[2].body, want) {
		t.Errorf("range through the non-owner: %d bytes, not the blob's", len(got[2].body))
	}

	if routing != "proxy" {
		return
	}
	// 200 GETs through the non-owner: connections to the owners' HTTP ports.
	ports := map[int]bool{}
	for _, o := range owners {
		ports[addrPort(t, o.Addr())] = true
	}
	before := loopbackConns(t, ports)
	for i := range 200 {
		if a := readBlob(t, others[0].URL()+path, http.MethodGet, nil); a.status != http.StatusOK || !bytes.Equal(a.body, data) {
			t.Fatalf("GET %d through the non-owner: %d, %d bytes", i, a.status, len(a.body))
		}
	}
	opened := 0
	for conn := range loopbackConns(t, ports) {
		if !before[conn] {
			opened++
		}
	}
	logMeasure(t, "200 GETs of a %d KiB blob through a non-owner opened %d connection(s) to its owners", len(data)>>10, opened)
	if opened > 4 {
		t.Errorf("200 GETs through the non-owner opened %d connections to the owners, want at most 4 (pooled)", opened)
	}
}

// parityAnswer is one response, its headers normalised for comparison.
type parityAnswer struct {
	status int
	header http.Header
	body   []byte
}

// diff describes how a differs from want, "" when it does not.
func (a parityAnswer) diff(want parityAnswer) string {
	var out []string
	if a.status != want.status {
		out = append(out, fmt.Sprintf("status %d, want %d", a.status, want.status))
	}
	keys := map[string]bool{}
	for k := range a.header {
		keys[k] = true
	}
	for k := range want.header {
		keys[k] = true
	}
	for _, k := range slices.Sorted(maps.Keys(keys)) {
		if g, w := a.header[k], want.header[k]; !slices.Equal(g, w) {
			out = append(out, fmt.Sprintf("%s %q, want %q", k, g, w))
		}
	}
	if !bytes.Equal(a.body, want.body) {
		out = append(out, fmt.Sprintf("body of %d bytes differs from the owner's %d", len(a.body), len(want.body)))
	}
	return strings.Join(out, "; ")
}

// readBlob sends one request on a fresh client and returns the answer with
// Date and hop-by-hop headers dropped and a multipart boundary replaced by
// a fixed one.
func readBlob(t *testing.T, url, method string, header map[string]string) parityAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := parityClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	h := resp.Header.Clone()
	for _, k := range []string{"Date", "Connection", "Keep-Alive", "Transfer-Encoding"} {
		h.Del(k)
	}
	if mt, params, err := mime.ParseMediaType(h.Get("Content-Type")); err == nil && params["boundary"] != "" {
		body = bytes.ReplaceAll(body, []byte(params["boundary"]), []byte("BOUNDARY"))
		h.Set("Content-Type", mt+"; boundary=BOUNDARY")
	}
	return parityAnswer{status: resp.StatusCode, header: h, body: body}
}

// parityClient keeps its connections: the connection count is the members'.
var parityClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}

func addrPort(t *testing.T, addr string) int {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	p, err := strconv.Atoi(addr[i+1:])
	if err != nil {
		t.Fatalf("port of %s: %v", addr, err)
	}
	return p
}

// loopbackConns returns the IPv4 TCP connections (any state, TIME_WAIT
// included) whose local port is one of ports, as "local remote" pairs from
// /proc/net/tcp: each is a connection some client opened to that port.
func loopbackConns(t *testing.T, ports map[int]bool) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	tcpSockets(t, ports, func(fields []string) {
		if fields[3] != "0A" { // LISTEN
			out[fields[1]+" "+fields[2]] = true
		}
	})
	return out
}

// tcpSockets calls fn with the fields of each line of /proc/net/tcp (IPv4
// TCP sockets: sl, local and remote address, state, tx_queue:rx_queue, ...)
// whose local port is one of ports.
func tcpSockets(t *testing.T, ports map[int]bool, fn func(fields []string)) {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skipf("reading sockets needs Linux's /proc/net/tcp: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		local := fields[1]
		port, err := strconv.ParseInt(local[strings.LastIndexByte(local, ':')+1:], 16, 32)
		if err == nil && ports[int(port)] {
			fn(fields)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// ackLedger records, from the client's side of the wire, every blob and
// manifest a registry acknowledged with 201 Created, so a test can check at
// the end that no acknowledged push was lost: each is readable, with the
// right digest, through every live member. Its methods may be called
// concurrently.
type ackLedger struct {
	mu        sync.Mutex
	blobs     map[blobKey]bool
	manifests map[blobKey]bool
	statuses  map[int]int // responses seen, by status
	problems  []string    // 201s that contradict the request
}

func newAckLedger() *ackLedger {
	return &ackLedger{blobs: map[blobKey]bool{}, manifests: map[blobKey]bool{}, statuses: map[int]int{}}
}

// wrap returns a transport that sends through next and records what the
// registry acknowledges.
func (l *ackLedger) wrap(next http.RoundTripper) http.RoundTripper {
	return recordingTransport{l: l, next: next}
}

type recordingTransport struct {
	l    *ackLedger
	next http.RoundTripper
}

func (rt recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := rt.next.RoundTrip(req)
	if err == nil {
		rt.l.observe(req, resp)
	}
	return resp, err
}

// observe records a 201 to a blob upload (PUT ?digest=, monolithic POST
// ?digest=, mount POST ?mount=) or to a manifest PUT.
func (l *ackLedger) observe(req *http.Request, resp *http.Response) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.statuses[resp.StatusCode]++
	if resp.StatusCode != http.StatusCreated {
		return
	}
	p := req.URL.Path
	header := resp.Header.Get("Docker-Content-Digest")
	if i := strings.LastIndex(p, "/blobs/uploads/"); strings.HasPrefix(p, "/v2/") && i > len("/v2") {
		repo, q := p[len("/v2/"):i], req.URL.Query()
		sent := q.Get("digest")
		if sent == "" {
			sent = q.Get("mount")
		}
		d, err := digest.Parse(sent)
		if err != nil {
			l.problem("%s %s: 201 for no digest", req.Method, req.URL)
			return
		}
		if header != "" && header != d.String() {
			l.problem("%s %s: 201 with Docker-Content-Digest %s", req.Method, req.URL, header)
		}
		l.blobs[blobKey{repo, d}] = true
		return
	}
	if i := strings.LastIndex(p, "/manifests/"); req.Method == http.MethodPut && strings.HasPrefix(p, "/v2/") && i > len("/v2") {
		repo, ref := p[len("/v2/"):i], p[i+len("/manifests/"):]
		d, err := digest.Parse(header)
		if err != nil {
			l.problem("PUT %s: 201 with Docker-Content-Digest %q", req.URL, header)
			if d, err = digest.Parse(ref); err != nil {
				return
			}
		}
		if strings.Contains(ref, ":") && ref != d.String() {
			l.problem("PUT %s: 201 with Docker-Content-Digest %s", req.URL, d)
		}
		l.manifests[blobKey{repo, d}] = true
	}
}

func (l *ackLedger) problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

// status returns how many responses had status code.
func (l *ackLedger) status(code int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.statuses[code]
}

// blobDigests returns the distinct digests of the acknowledged blobs.
func (l *ackLedger) blobDigests() map[digest.Digest]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[digest.Digest]bool{}
	for k := range l.blobs {
		out[k.d] = true
	}
	return out
}

func (l *ackLedger) snapshot() (blobs, manifests []blobKey, problems []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.blobs {
		blobs = append(blobs, k)
	}
	for k := range l.manifests {
		manifests = append(manifests, k)
	}
	return blobs, manifests, append([]string(nil), l.problems...)
}

// manifestAccept accepts every manifest media type a push may have used.
var manifestAccept = http.Header{"Accept": {strings.Join([]string{
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.docker.distribution.manifest.v2+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
}, ", ")}}

// verify checks that every acknowledged blob and manifest is readable with
// the right digest through each base URL (a member or a rrBalancer) and logs
// the counts. Any failure fails the test.
func (l *ackLedger) verify(t *testing.T, bases map[string]string) {
	t.Helper()
	blobs, manifests, problems := l.snapshot()
	for _, p := range problems {
		t.Errorf("ledger: %s", p)
	}
	if len(blobs) == 0 || len(manifests) == 0 {
		t.Errorf("ledger: nothing to verify (%d blobs, %d manifests acknowledged)", len(blobs), len(manifests))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	type read struct {
		via, base string
		k         blobKey
		manifest  bool
	}
	var reads []read
	for via, base := range bases {
		for _, k := range blobs {
			reads = append(reads, read{via, base, k, false})
		}
		for _, k := range manifests {
			reads = append(reads, read{via, base, k, true})
		}
	}
	clients := map[string]*client{}
	for _, base := range bases {
		clients[base] = newClient(base)
		defer clients[base].close()
	}
	start := time.Now()
	errs := parallel(len(reads), 8, func(i int) error {
		r := reads[i]
		kind, path, h := "blob", "/v2/"+r.k.repo+"/blobs/"+r.k.d.String(), http.Header(nil)
		if r.manifest {
			kind, path, h = "manifest", "/v2/"+r.k.repo+"/manifests/"+r.k.d.String(), manifestAccept
		}
		resp, err := clients[r.base].do(ctx, http.MethodGet, path, h, nil, http.StatusOK)
		if err != nil {
			return fmt.Errorf("acknowledged %s %s@%s through %s: %w", kind, r.k.repo, r.k.d, r.via, err)
		}
		if got := r.k.d.Algorithm().FromBytes(resp.body); got != r.k.d {
			return fmt.Errorf("acknowledged %s %s@%s through %s: content has digest %s", kind, r.k.repo, r.k.d, r.via, got)
		}
		return nil
	})
	for i, err := range errs {
		if i == maxReported {
			t.Errorf("ledger: ... and %d more lost acknowledged pushes", len(errs)-maxReported)
			break
		}
		t.Errorf("ledger: lost: %v", err)
	}
	t.Logf("ledger: %d blobs and %d manifests acknowledged (201); %d reads through %d endpoints, %d failed (%v)",
		len(blobs), len(manifests), len(reads), len(bases), len(errs), time.Since(start).Round(time.Millisecond))
}

// memberBases names the base URL of each member, for ackLedger.verify.
func memberBases(ms []*clusterMember) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		out[m.name] = m.URL()
	}
	return out
}
